"""Hostile input to every route is a 4xx with {"error"}, never a 5xx, and stores nothing."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from collector import bodies
from tests.collector.harness import Collector, count, record, running
from tests.collector.test_bad_input import LIMITS, check_answer

MEASUREMENTS = "/api/v1/measurements"
PROBES = "/api/v1/probes"
CONTROL = "/api/v1/control"
DEEP = b"[" * 20_000 + b"]" * 20_000  # under the body limit of the batches and the control
# a thousand levels: under the registrations' 4 KiB, and deep enough to have crashed a recursive
# decoder
DEEP_SMALL = b"[" * 1_000 + b"]" * 1_000
DEEP_OBJECT = b'{"records": ' + DEEP + b"}"
HUGE_NUMBER = "1" + "0" * 399  # 400 digits


def _cursor(started_at: str) -> str:
    raw = json.dumps([started_at, "00000000-0000-4000-8000-000000000000"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _record_with(**fields: Any) -> bytes:
    r = record(100)
    r.update(fields)
    return json.dumps({"records": [r]}).encode()


def _huge_in_record() -> bytes:
    text = json.dumps({"records": [record(100)]})
    return text.replace('"duration_ms": ', f'"duration_ms": {HUGE_NUMBER}, "x": ', 1).encode()


def _unknown_keys(n: int) -> dict[str, Any]:
    r = record(100)
    r.update({f"k{i}": i for i in range(n)})
    return {"records": [r]}


@pytest.fixture
async def collector(sqlite_url: str) -> AsyncIterator[tuple[Collector, str]]:
    """A collector with one registered probe, its control vantage on; yields it and the token."""
    settings = {**LIMITS, "limits.max_body_bytes": 1 << 20, "control.enabled": True}
    async with running(sqlite_url, **settings) as c:
        _, token = await c.register()
        yield c, token


# name: (body, extra headers, status, start of the message)
SUBMISSIONS: dict[str, tuple[Any, dict[str, str], int, str]] = {
    "deep_nesting": (DEEP_OBJECT, {}, 400, "body: nested deeper than"),
    "started_at_year_1": (
        _record_with(started_at="0001-01-01T00:00:00+01:00"),
        {},
        400,
        "records[0].started_at:",
    ),
    "started_at_year_9999": (
        _record_with(started_at="9999-12-31T23:59:59-01:00"),
        {},
        400,
        "records[0].started_at:",
    ),
    "huge_integer": (_huge_in_record(), {}, 400, "body: a number of more than 64 bits"),
    "text_plain": (
        json.dumps({"records": [record(100)]}).encode(),
        {"Content-Type": "text/plain"},
        415,
        "Content-Type: expected application/json",
    ),
    "gzip_not_gzip": (
        json.dumps({"records": [record(100)]}).encode(),
        {"Content-Encoding": "gzip"},
        400,
        "body: not valid gzip",
    ),
    "unsupported_encoding": (
        json.dumps({"records": [record(100)]}).encode(),
        {"Content-Encoding": "compress"},
        415,
        "Content-Encoding: 'compress' is not supported",
    ),
    "too_many_unknown_keys": (_unknown_keys(100), {}, 400, "body: an object has more than 64 keys"),
}


@pytest.mark.parametrize("case", list(SUBMISSIONS))
async def test_hostile_submission(collector: tuple[Collector, str], case: str) -> None:
    c, token = collector
    body, headers, status, message = SUBMISSIONS[case]
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    async with c.client.post(MEASUREMENTS, headers=headers, **kw) as r:
        await check_answer(r, status, message)
    assert count(c.store) == 0


async def test_a_few_unknown_keys_are_ignored(collector: tuple[Collector, str]) -> None:
    c, token = collector
    status, answer = await c.submit(token, _unknown_keys(10))
    assert (status, answer["accepted"]) == (200, 1)


async def test_a_gzip_body_is_accepted(collector: tuple[Collector, str]) -> None:
    c, token = collector
    body = gzip.compress(json.dumps({"records": [record(100)]}).encode())
    headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
    headers["Content-Type"] = "application/json"
    async with c.client.post(MEASUREMENTS, data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["accepted"] == 1


async def test_a_non_ascii_authorization_is_a_401(collector: tuple[Collector, str]) -> None:
    c, _ = collector
    headers = {"Authorization": "Bearer t\u00e9l\u00e9", "Content-Type": "application/json"}
    body = json.dumps({"records": [record(100)]}).encode()
    async with c.client.post(MEASUREMENTS, data=body, headers=headers) as r:
        await check_answer(r, 401, "Authorization:")
    raw = {"Authorization": b"Bearer \xff\xfe".decode("latin-1")}
    async with c.client.get(MEASUREMENTS, headers=raw) as r:
        assert r.status == 200  # the reading routes take no token
    async with c.client.post(MEASUREMENTS, data=body, headers=raw) as r:
        await check_answer(r, 401, "Authorization:")


QUERIES: dict[str, tuple[str, int, str]] = {
    "cursor_year_1": (
        f"{MEASUREMENTS}?cursor={_cursor('0001-01-01T00:00:00+01:00')}",
        400,
        "cursor:",
    ),
    "cursor_deep": (
        f"{MEASUREMENTS}?cursor={base64.urlsafe_b64encode(b'[' * 3000).decode()}",
        400,
        "cursor:",
    ),
    "cursor_year_9999": (
        f"{MEASUREMENTS}?cursor={_cursor('9999-12-31T23:59:59-01:00')}",
        400,
        "cursor:",
    ),
    "since_year_1": (f"{MEASUREMENTS}?since=0001-01-01T00:00:00%2B01:00", 400, "since:"),
    "until_year_9999": (f"{MEASUREMENTS}?until=9999-12-31T23:59:59-01:00", 400, "until:"),
    "flags_since_year_1": ("/api/v1/flags?since=0001-01-01T00:00:00%2B01:00", 400, "since:"),
    "export_since_year_9999": ("/api/v1/export?since=9999-12-31T23:59:59-01:00", 400, "since:"),
    "asn_past_64_bits": (f"{MEASUREMENTS}?asn={2**70}", 400, "asn:"),
    "collateral_asn_past_64_bits": (f"/api/v1/collateral?asn={2**70}", 400, "asn:"),
    "collateral_asn_5000_digits": ("/api/v1/collateral?asn=" + "9" * 5000, 400, "asn:"),
    "flags_method": ("/api/v1/flags?method=AAA", 400, "method: 'AAA' is not one of"),
}


@pytest.mark.parametrize("case", list(QUERIES))
async def test_hostile_query(collector: tuple[Collector, str], case: str) -> None:
    c, _ = collector
    path, status, message = QUERIES[case]
    async with c.client.get(path) as r:
        await check_answer(r, status, message)


REGISTRATIONS: dict[str, tuple[Any, dict[str, str], int, str]] = {
    "asn_past_64_bits": ({"asn": 2**70}, {}, 400, "body: a number of more than 64 bits"),
    "asn_past_32_bits": ({"asn": 2**40}, {}, 400, "asn: expected a positive integer up to"),
    "asn_400_digits": (f'{{"asn": {HUGE_NUMBER}}}'.encode(), {}, 400, "body: a number of more"),
    "deep_nesting": (DEEP_SMALL, {}, 400, "body: nested deeper than"),
    "enrollment_key_a_number": ({"enrollment_key": 5}, {}, 400, "enrollment_key: expected a"),
    "enrollment_key_a_list": ({"enrollment_key": ["x"]}, {}, 400, "enrollment_key: expected a"),
    "text_plain": (b"{}", {"Content-Type": "text/plain"}, 415, "Content-Type: expected"),
    "gzip_not_gzip": (b"{}", {"Content-Encoding": "gzip"}, 400, "body: not valid gzip"),
    "compress": (b"{}", {"Content-Encoding": "compress"}, 415, "Content-Encoding: 'compress'"),
    "two_codings": (b"{}", {"Content-Encoding": "gzip, gzip"}, 415, "Content-Encoding:"),
    "too_many_unknown_keys": (
        {f"k{i}": i for i in range(100)},
        {},
        400,
        "body: an object has more than",
    ),
}


@pytest.mark.parametrize("case", list(REGISTRATIONS))
async def test_hostile_registration(sqlite_url: str, case: str) -> None:
    body, headers, status, message = REGISTRATIONS[case]
    async with running(sqlite_url, **{**LIMITS, "auth.enrollment_key": "sesame"}) as c:
        kw = {"data": body} if isinstance(body, bytes) else {"json": body}
        headers = {"Content-Type": "application/json", **headers}
        async with c.client.post(PROBES, headers=headers, **kw) as r:
            await check_answer(r, status, message)
        assert c.store.list_probes() == []


CONTROLS: dict[str, tuple[Any, int, str]] = {
    "deep_nesting": (DEEP, 400, "body: nested deeper than"),
    "bracket_host": ({"targets": [{"url": "http://[::1/"}]}, 400, "targets[0].url:"),
    "bad_port": ({"targets": [{"url": "http://example.com:99999/"}]}, 400, "targets[0].url:"),
    "port_not_a_number": ({"targets": [{"url": "http://example.com:x/"}]}, 400, "targets[0].url"),
    "empty_host": ({"targets": [{"url": "http:///page"}]}, 400, "targets[0].url:"),
    "nul": ({"targets": [{"url": "http://exa\x00mple.com/"}]}, 400, "targets[0].url:"),
    "huge_label": ({"targets": [{"url": "http://" + "a" * 300 + ".com/"}]}, 400, "targets[0]"),
    "unicode_dots": ({"targets": [{"url": "http://a\uff0e\u3002com/"}]}, 400, "targets[0].url"),
    "addresses_not_strings": (
        {"targets": [{"url": "https://example.com/", "addresses": [[1]]}]},
        400,
        "targets[0].addresses:",
    ),
}


@pytest.mark.parametrize("case", list(CONTROLS))
async def test_hostile_control(collector: tuple[Collector, str], case: str) -> None:
    c, token = collector
    body, status, message = CONTROLS[case]
    kw = {"data": body} if isinstance(body, bytes) else {"json": body}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with c.client.post(CONTROL, headers=headers, **kw) as r:
        await check_answer(r, status, message)


async def test_authorization_bytes_past_ascii_are_a_401(collector: tuple[Collector, str]) -> None:
    """Sent as raw bytes: a client library would encode the header as text first."""
    c, _ = collector
    body = json.dumps({"records": [record(100)]}).encode()
    head = (
        b"POST /api/v1/measurements HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\xc3\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(c.client.host, c.client.port)
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"401", answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"].startswith("Authorization:")
    assert count(c.store) == 0


@pytest.mark.parametrize("coding", ["br", "zstd"])
async def test_encodings_aiohttp_cannot_read_are_refused(sqlite_url: str, coding: str) -> None:
    """Refused by aiohttp's parser before any handler runs (so not in the JSON shape): a 4xx."""
    async with running(sqlite_url, **LIMITS) as c:
        headers = {"Content-Type": "application/json", "Content-Encoding": coding}
        async with c.client.post(PROBES, data=b"{}", headers=headers) as r:
            assert r.status in (400, 415), await r.text()
        assert c.store.list_probes() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 33 + b"]" * 33, "body: nested deeper than 32"),
        (b"1" + b"0" * 25, "body: a number of more than 64 bits"),
        (b'{"a": [1, {"b": -18446744073709551616}]}', "body: a number of more than 64 bits"),
        (json.dumps({f"k{i}": 0 for i in range(65)}).encode(), "body: an object has more"),
    ],
)
def test_the_bounds_refuse(raw: bytes, message: str) -> None:
    with pytest.raises(bodies.BodyError) as refused:
        bodies.decode_json(raw)
    assert (refused.value.status, refused.value.message[: len(message)]) == (400, message)


def test_the_bounds_take_what_is_inside_them() -> None:
    inside = b"[" * 32 + b"]" * 32
    assert bodies.decode_json(inside) is not None
    numbers = b'[18446744073709551615, -9223372036854775808, "123456789012345678901234"]'
    assert bodies.decode_json(numbers)[0] == 2**64 - 1
    assert len(bodies.decode_json(json.dumps({f"k{i}": 0 for i in range(64)}).encode())) == 64
