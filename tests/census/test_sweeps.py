"""POST /api/v1/sweeps on a real collector (SQLite, PostgreSQL): bounds, refusals, idempotency."""

from __future__ import annotations

import datetime
import gzip
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from collector.handlers import STATE
from collector.store.schema import sweeps
from tests.collector.harness import Collector, running
from tests.support.census_rows import entry, sweep

SWEEPS = "/api/v1/sweeps"
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
async def c(db_url: str) -> AsyncIterator[Collector]:
    """A collector whose address judge drains only when told (or before a census read)."""
    async with running(db_url, judge_in_background=False) as found:
        yield found


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(c: Collector, token: str | None, **kw: Any) -> tuple[int, Any]:
    h = {**(headers(token) if token else {}), **kw.pop("headers", {})}
    async with c.client.post(SWEEPS, headers=h, **kw) as r:
        return r.status, await r.json()


def stored(c: Collector) -> list[Any]:
    return c.store.read(lambda conn: list(conn.execute(sa.select(sweeps).order_by(sweeps.c.id))))


def one(entries: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    found = sweep(entries or [entry("8.8.8.8"), entry("1.1.1.1", "tcp")], NOW, **kw)
    return {"sweeps": [found]}


async def test_a_sweep_is_stored_pending_and_a_resubmission_is_a_duplicate(c: Collector) -> None:
    _, token = await c.register()
    body = one([entry("2001:DB8:0:0::0001"), entry("8.8.8.8", "tls")], asn=3215, network="Orange")
    assert await post(c, token, json=body) == (200, {"accepted": 1, "inserted": 1, "duplicates": 0})
    assert await post(c, token, json=body) == (200, {"accepted": 1, "inserted": 0, "duplicates": 1})
    [row] = stored(c)
    assert (row.id, row.entries, row.judged_at) == (body["sweeps"][0]["id"], 2, None)
    assert (row.asn, row.network) == (3215, "Orange")
    assert row.doc["entries"][0]["ip"] == "2001:db8::1"  # canonical
    assert "tls" not in row.doc["entries"][0] or row.doc["entries"][0]["tls"] is None
    assert row.doc["entries"][1]["tls_neutral"] == "connection_reset"
    metrics = await (await c.client.get("/metrics")).text()
    assert 'surblocage_sweeps_ingested_total{network="Orange"} 1.0' in metrics
    assert 'surblocage_sweep_entries_ingested_total{network="Orange"} 2.0' in metrics


async def test_the_network_is_the_registrations_when_the_sweep_declares_none(c: Collector) -> None:
    _, token = await c.register(asn=12322, network="Free")
    assert (await post(c, token, json=one()))[0] == 200
    [row] = stored(c)
    assert (row.asn, row.network) == (12322, "Free")


async def test_ten_sweeps_of_a_thousand_entries_are_accepted_and_gzip_too(c: Collector) -> None:
    _, token = await c.register()
    entries = [entry(f"8.8.{i // 250}.{i % 250}") for i in range(1000)]
    body = {"sweeps": [sweep(entries, NOW) for _ in range(10)]}
    raw = gzip.compress(json.dumps(body).encode())
    h = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    status, answer = await post(c, token, data=raw, headers=h)
    assert (status, answer["inserted"]) == (200, 10), answer
    assert sum(r.entries for r in stored(c)) == 10_000


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the field at ``path`` (dots, [n] indexes) of a body to ``value``."""

    def change(body: dict[str, Any]) -> None:
        keys = [
            int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
        ]
        target: Any = body
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return change


LONG_FAILURE = "unknown_failure: " + "x" * 240
REFUSALS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("schema", _set("sweeps.0.schema", 2), "sweeps[0].schema: "),
    ("id", _set("sweeps.0.id", str(uuid.uuid4()).upper()), "sweeps[0].id: "),
    ("id-not-uuid", _set("sweeps.0.id", "one"), "sweeps[0].id: "),
    ("ip", _set("sweeps.0.entries.1.ip", "999.1.1.1"), "sweeps[0].entries[1].ip: "),
    ("ip-type", _set("sweeps.0.entries.1.ip", 7), "sweeps[0].entries[1].ip: "),
    ("port-0", _set("sweeps.0.entries.0.port", 0), "sweeps[0].entries[0].port: "),
    ("port-big", _set("sweeps.0.entries.0.port", 65536), "sweeps[0].entries[0].port: "),
    ("sni", _set("sweeps.0.entries.0.sni", "a b.example"), "sweeps[0].entries[0].sni: "),
    ("sni-ip", _set("sweeps.0.entries.0.sni", "_x.example"), "sweeps[0].entries[0].sni: "),
    ("sni-long", _set("sweeps.0.entries.0.sni", ("a" * 60 + ".") * 4 + "abcdefghijk"), "sni: "),
    ("tcp", _set("sweeps.0.entries.0.tcp", "weird"), "sweeps[0].entries[0].tcp: "),
    ("tcp-long", _set("sweeps.0.entries.0.tcp", LONG_FAILURE), "sweeps[0].entries[0].tcp: "),
    ("tls-after-tcp", _set("sweeps.0.entries.1.tls", None), "sweeps[0].entries[1].tls: "),
    ("neutral", _set("sweeps.0.entries.0.tls_neutral", None), "entries[0].tls_neutral: "),
    ("ms", _set("sweeps.0.entries.0.ms", -1), "sweeps[0].entries[0].ms: "),
    ("ms-long", _set("sweeps.0.entries.0.ms", 600_001), "sweeps[0].entries[0].ms: "),
    ("unknown", _set("sweeps.0.entries.0.body", "<html>"), "sweeps[0].entries[0]: "),
    ("future", _set("sweeps.0.started_at", "2099-01-01T00:00:00Z"), "sweeps[0].started_at: "),
    ("date", _set("sweeps.0.started_at", "yesterday"), "sweeps[0].started_at: "),
    ("asn", _set("sweeps.0.probe.asn", 2**32), "sweeps[0].probe.asn: "),
    ("network-nul", _set("sweeps.0.probe.network", "Or\x00ange"), "sweeps[0].probe.network: "),
    ("many", lambda b: b.update(sweeps=b["sweeps"] * 11), "sweeps: "),
    ("none", lambda b: b.update(sweeps=[]), "sweeps: "),
    ("body", lambda b: b.update(records=[]), "body: "),
    ("entries", _set("sweeps.0.entries", [entry("8.8.8.8")] * 1001), "sweeps[0].entries: "),
]


@pytest.mark.parametrize(
    ("change", "named"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_a_bad_sweep_refuses_the_request_whole_naming_the_field(
    c: Collector, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    _, token = await c.register()
    body = {"sweeps": [one()["sweeps"][0], one()["sweeps"][0]]}
    body["sweeps"][1]["id"] = str(uuid.uuid4())
    change(body)
    status, answer = await post(c, token, json=body)
    assert status == 400, answer
    assert named in answer["error"], answer
    assert stored(c) == []


async def test_a_sweep_older_than_the_collector_keeps_is_refused(db_url: str) -> None:
    async with running(db_url, **{"ingest.max_record_age_seconds": 3600}) as c:
        _, token = await c.register()
        old = {"sweeps": [sweep([entry("8.8.8.8")], NOW - datetime.timedelta(hours=2))]}
        status, answer = await post(c, token, json=old)
        assert (status, answer["error"][:21]) == (400, "sweeps[0].started_at:")


async def test_without_a_token_401_another_probes_sweep_403(c: Collector) -> None:
    other, _ = await c.register()
    _, token = await c.register()
    assert (await post(c, None, json=one()))[0] == 401
    assert (await post(c, "nope", json=one()))[0] == 401
    status, answer = await post(c, token, json=one(id=other))
    assert (status, answer["error"][:16]) == (403, "sweeps[0].probe.")
    assert stored(c) == []


async def test_too_large_413_not_json_415(db_url: str) -> None:
    async with running(db_url, **{"limits.max_body_bytes": 2000}) as c:
        _, token = await c.register()
        big = one([entry("8.8.8.8")] * 40)
        assert (await post(c, token, json=big))[0] == 413
        plain = {"Content-Type": "text/plain"}
        assert (await post(c, token, data=b"{}", headers=plain))[0] == 415
        assert (await post(c, token, data=b"{", headers={"Content-Type": "application/json"}))[
            0
        ] == 400
        assert stored(c) == []


async def test_the_address_judge_takes_what_is_pending(c: Collector) -> None:
    _, token = await c.register()
    await post(c, token, json=one())
    assert await c.app[STATE].address_judge.drain() == 1
    [row] = stored(c)
    assert row.judged_at is not None
    assert await c.app[STATE].address_judge.drain() == 0
