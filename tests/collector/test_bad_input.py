"""Bad input gets the right 4xx, as {"error"} naming the field, never a 5xx, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.collector.harness import Collector, batch, count, record, running

MEASUREMENTS = "/api/v1/measurements"
LIMITS = {"limits.max_body_bytes": 65_536, "limits.max_batch_records": 20}


def bad(change: Callable[[dict[str, Any]], object]) -> Callable[[str], dict[str, Any]]:
    """A batch whose first record is good and whose second is changed by ``change``."""

    def build(_other_probe: str) -> dict[str, Any]:
        second = record(101)
        change(second)
        return {"records": [record(100), second]}

    return build


def claim(probe_id: str) -> dict[str, Any]:
    second = record(101)
    second["probe"]["id"] = probe_id
    return {"records": [record(100), second]}


# name: (auth, body or a builder taking the other probe's id, status, start of the message)
SUBMISSIONS: dict[str, tuple[str, Any, int, str]] = {
    "malformed_json": ("token", b'{"records": [', 400, "body: not valid JSON"),
    "not_utf8": ("token", b"\xff\xfe{}", 400, "body: not valid JSON"),
    # not JSON (RFC 8259), though Python's json module writes and reads them
    "nan": ("token", bad(lambda r: r.update(duration_ms=float("nan"))), 400, "body: not valid"),
    "infinity": ("token", bad(lambda r: r.update(duration_ms=float("inf"))), 400, "body: not"),
    "lone_surrogate": (
        "token",
        bad(lambda r: r["http"].update(title="\ud800")),
        400,
        "body: not valid JSON",
    ),
    "not_an_object": ("token", [], 400, "body: expected an object with a 'records' array"),
    "records_not_a_list": ("token", {"records": {}}, 400, "body: expected an object with a"),
    "empty_batch": ("token", {"records": []}, 400, "records: the batch is empty"),
    "wrong_schema": ("token", bad(lambda r: r.update(schema=2)), 400, "records[1].schema:"),
    "missing_schema": ("token", bad(lambda r: r.pop("schema")), 400, "records[1].schema:"),
    "missing_target": ("token", bad(lambda r: r.pop("target")), 400, "records[1].target"),
    "missing_url": ("token", bad(lambda r: r["target"].pop("url")), 400, "records[1].target.url"),
    "wrong_type": ("token", bad(lambda r: r.update(duration_ms="x")), 400, "records[1].duration"),
    "bad_id": ("token", bad(lambda r: r.update(id="42")), 400, "records[1].id:"),
    "bad_time": ("token", bad(lambda r: r.update(started_at="now")), 400, "records[1].started_at"),
    "bad_rcode": ("token", bad(lambda r: r["dns"][0].update(rcode=3)), 400, "records[1].dns[0]"),
    "nul_in_service": (
        "token",
        bad(lambda r: r["target"].update(service="my\x00canal")),
        400,
        "records[1].target.service: contains a NUL",
    ),
    "asn_past_32_bits": (
        "token",
        bad(lambda r: r["probe"].update(asn=2**40)),
        400,
        "records[1].probe.asn:",
    ),
    "bad_verdict": (
        "token",
        bad(lambda r: r["verdict"].update(status="censored")),
        400,
        "records[1].verdict.status:",
    ),
    "too_many_records": ("token", batch(range(200, 221)), 413, "records: 21 records"),
    "oversized_body": (
        "token",
        b'{"records": [' + b" " * 70_000 + b"]}",
        413,
        "body: larger than the limit",
    ),
    "no_token": ("none", batch([100]), 401, "Authorization: expected 'Bearer <token>'"),
    "unknown_token": ("unknown", batch([100]), 401, "Authorization: unknown token"),
    "basic_auth": ("basic", batch([100]), 401, "Authorization: expected 'Bearer <token>'"),
    "another_probe": ("token", claim, 403, "records[1].probe.id:"),
}

QUERIES: dict[str, tuple[str, int, str]] = {
    "unknown_parameter": (f"{MEASUREMENTS}?colour=blue", 400, "colour: unknown parameter"),
    "asn_not_a_number": (f"{MEASUREMENTS}?asn=AS3215", 400, "asn: expected a whole number"),
    "asn_unicode_digit": (f"{MEASUREMENTS}?asn=%C2%B2", 400, "asn: expected a whole number"),
    "asn_too_large": (f"{MEASUREMENTS}?asn=99999999999", 400, "asn: 99999999999 is not an AS"),
    "since_not_a_time": (f"{MEASUREMENTS}?since=yesterday", 400, "since: expected an RFC 3339"),
    "until_without_zone": (f"{MEASUREMENTS}?until=2026-03-01T00:00:00", 400, "until: give a"),
    "limit_zero": (f"{MEASUREMENTS}?limit=0", 400, "limit: 0 is not between 1 and 1000"),
    "limit_too_large": (f"{MEASUREMENTS}?limit=1001", 400, "limit: 1001 is not between"),
    "bad_cursor": (f"{MEASUREMENTS}?cursor=xyz", 400, "cursor: not a cursor this API gave"),
    "unknown_status": (f"{MEASUREMENTS}?status=maybe", 400, "status: 'maybe' is not one of"),
    "unknown_method": (f"{MEASUREMENTS}?method=bgp", 400, "method: 'bgp' is not one of"),
    "repeated": (f"{MEASUREMENTS}?service=a&service=b", 400, "service: given more than once"),
    "nul_in_filter": (f"{MEASUREMENTS}?domain=a%00b", 400, "domain: contains a NUL"),
    "export_format": ("/api/v1/export?format=xml", 400, "format: 'xml' is not one of jsonl, csv"),
    "export_paging": ("/api/v1/export?limit=5", 400, "limit: unknown parameter"),
    # the flag and collateral filters are checked by the same definitions as the measurements'
    "flag_method": ("/api/v1/flags?method=bgp", 400, "method: 'bgp' is not one of dns, tcp_ip"),
    "flag_category": ("/api/v1/flags?category=x", 400, "category: 'x' is not one of iptv_legal"),
    "flag_state": ("/api/v1/flags?state=gone", 400, "state: 'gone' is not one of open, closed"),
    "collateral_asn": ("/api/v1/collateral?asn=99999999999", 400, "asn: 99999999999 is not an"),
    "collateral_nul": ("/api/v1/collateral?network=a%00b", 400, "network: contains a NUL"),
    "unknown_route": ("/api/v1/nothing", 404, ""),
}

REGISTRATIONS: dict[str, tuple[Any, int, str]] = {
    "malformed_json": (b"{", 400, "body: not valid JSON"),
    "not_an_object": ([], 400, "body: expected an object"),
    "negative_asn": ({"asn": -5}, 400, "asn: expected a positive integer"),
    "boolean_asn": ({"asn": True}, 400, "asn: expected a positive integer"),
    "empty_network": ({"network": ""}, 400, "network: expected a name of 1 to 64"),
    "oversized_body": (b'{"network": "' + b"x" * 70_000 + b'"}', 413, "body: larger than"),
}


@pytest.fixture
async def loaded(db_url: str) -> AsyncIterator[tuple[Collector, str, str]]:
    """A collector with two probes and two stored records; yields it, a token, the other id."""
    async with running(db_url, **LIMITS) as c:
        _, token = await c.register()
        other, _ = await c.register()
        assert (await c.submit(token, batch([1, 2])))[0] == 200
        yield c, token, other


async def check_answer(response: Any, status: int, message: str) -> None:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    body = json.loads(text)
    assert list(body) == ["error"]
    assert body["error"].startswith(message), body
    assert "Traceback" not in text


def nothing_stored(c: Collector) -> None:
    assert count(c.store) == 2
    assert len(c.store.list_probes()) == 2


def _headers(auth: str, token: str) -> dict[str, str]:
    return {
        "token": {"Authorization": f"Bearer {token}"},
        "none": {},
        "unknown": {"Authorization": "Bearer not-a-token"},
        "basic": {"Authorization": f"Basic {token}"},
    }[auth]


@pytest.mark.parametrize("case", list(SUBMISSIONS))
async def test_bad_submission(loaded: tuple[Collector, str, str], case: str) -> None:
    c, token, other = loaded
    auth, body, status, message = SUBMISSIONS[case]
    if callable(body):
        body = body(other)
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    headers = {**_headers(auth, token), "Content-Type": "application/json"}
    async with c.client.post(MEASUREMENTS, headers=headers, **kw) as r:
        await check_answer(r, status, message)
    nothing_stored(c)


@pytest.mark.parametrize("case", list(QUERIES))
async def test_bad_query(loaded: tuple[Collector, str, str], case: str) -> None:
    c, _, _ = loaded
    path, status, message = QUERIES[case]
    async with c.client.get(path) as r:
        await check_answer(r, status, message)
    nothing_stored(c)


@pytest.mark.parametrize("case", list(REGISTRATIONS))
async def test_bad_registration(loaded: tuple[Collector, str, str], case: str) -> None:
    c, _, _ = loaded
    body, status, message = REGISTRATIONS[case]
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    headers = {"Content-Type": "application/json"}
    async with c.client.post("/api/v1/probes", headers=headers, **kw) as r:
        await check_answer(r, status, message)
    nothing_stored(c)


async def test_wrong_method_is_a_json_405(loaded: tuple[Collector, str, str]) -> None:
    c, _, _ = loaded
    async with c.client.put(MEASUREMENTS, json={}) as r:
        await check_answer(r, 405, "")
        assert set(r.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}  # HEAD wherever GET is
    nothing_stored(c)


async def test_enrollment_key_guards_registration(sqlite_url: str) -> None:
    async with running(sqlite_url, **{"auth.enrollment_key": "sesame"}) as c:
        async with c.client.post("/api/v1/probes", json={"enrollment_key": "open"}) as r:
            await check_answer(r, 403, "enrollment_key: missing or wrong")
        assert c.store.list_probes() == []
        probe_id, _ = await c.register(enrollment_key="sesame")
        assert [p.id for p in c.store.list_probes()] == [probe_id]
