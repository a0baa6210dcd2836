"""GET /api/v1/addresses (SQLite, PostgreSQL): priority, deduplication, cap, public only, SNI."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from collector.census import targets
from collector.handlers import STATE
from collector.store import Store
from collector.store.schema import address_flags, network_key
from tests.collector.harness import Collector, answer_validator, running
from tests.support import census_rows
from tests.support.census_rows import RESOLVED_AT

LATER = RESOLVED_AT + datetime.timedelta(hours=1)


def open_flag(conn: sa.Connection, ip: str, state: str = "open") -> None:
    conn.execute(
        sa.insert(address_flags).values(
            id=f"{ip}-{state}", network_key=network_key(3215, "Orange"), asn=3215,
            network="Orange", ip=ip, method="tcp_ip", state=state, first_seen=RESOLVED_AT,
            last_seen=RESOLVED_AT, probes=["p"], confidence=0.5, evidence=["s"],
        )
    )  # fmt: skip


def fill(conn: sa.Connection) -> None:
    """Shared 8.8.8.8 (3 names), 1.1.1.1 (2 names), 9.9.9.9 (1, intended), 10.0.0.1 (private,
    4 names), 1.0.0.1 flagged; the watched service on 8.8.4.4 and 1.1.1.1."""
    census_rows.insert_names(
        conn,
        [
            ("b.example", 20, False, ["8.8.8.8", "10.0.0.1"]),
            ("a.example", 20, False, ["8.8.8.8", "10.0.0.1"]),
            ("c.example", None, False, ["8.8.8.8", "1.1.1.1", "10.0.0.1"]),
            ("d.example", 5, False, ["1.1.1.1", "10.0.0.1"]),
            ("pirate.example", 900, True, ["9.9.9.9"]),
        ],
    )
    census_rows.insert_names(conn, [("moved.example", 1, False, ["2.2.2.2"])], LATER)
    census_rows.insert_past_address(conn, "moved.example", "8.8.8.8", RESOLVED_AT)
    census_rows.insert_service_address(conn, "youtube", "8.8.4.4")
    census_rows.insert_service_address(conn, "youtube", "1.1.1.1")
    open_flag(conn, "1.0.0.1")
    open_flag(conn, "4.4.4.4", "closed")


def computed(store: Store, cap: int = 100, **kw: Any) -> list[dict[str, Any]]:
    return store.read(targets.compute, cap, (), {"youtube": "www.youtube.com"}, **kw)


@pytest.fixture
async def c(db_url: str) -> AsyncIterator[Collector]:
    async with running(db_url, judge_in_background=False) as found:
        yield found


def test_the_selection_in_priority_order_each_address_once(c: Collector) -> None:
    c.store.write(fill)
    found = computed(c.store)
    assert [(t["ip"], t["reasons"], t["domains"], t["sni"]) for t in found] == [
        ("1.0.0.1", ["flagged"], 0, "www.example.com"),
        ("9.9.9.9", ["intended", "shared"], 1, "pirate.example"),
        ("1.1.1.1", ["watched", "shared"], 2, "d.example"),
        ("8.8.4.4", ["watched"], 0, "www.youtube.com"),
        ("8.8.8.8", ["shared"], 3, "a.example"),  # moved.example is no longer on it
        ("2.2.2.2", ["shared"], 1, "moved.example"),
    ]
    assert all(t["port"] == 443 for t in found)


def test_the_cap_keeps_the_highest_priorities(c: Collector) -> None:
    c.store.write(fill)
    assert [t["ip"] for t in computed(c.store, cap=3)] == ["1.0.0.1", "9.9.9.9", "1.1.1.1"]
    assert computed(c.store, cap=3)[2]["reasons"] == ["watched", "shared"]  # all its reasons


def test_private_addresses_only_within_allow_networks(c: Collector) -> None:
    c.store.write(fill)
    assert "10.0.0.1" not in [t["ip"] for t in computed(c.store)]
    allowed = c.store.read(targets.compute, 100, targets.addresses.networks(["10.0.0.0/8"]))
    [private] = [t for t in allowed if t["ip"] == "10.0.0.1"]
    assert (private["reasons"], private["domains"], private["sni"]) == (["shared"], 4, "d.example")
    assert [t["ip"] for t in allowed].index("10.0.0.1") == 4  # the most names: first shared


async def test_the_route_serves_the_document_with_an_etag(c: Collector) -> None:
    c.store.write(fill)
    await c.app[STATE].targets.refresh()  # computed at start, before the rows were written
    async with c.client.get("/api/v1/addresses") as r:
        assert r.status == 200
        etag = r.headers["ETag"]
        body = await r.json()
    answer_validator("/api/v1/addresses", "get", "200").validate(body)
    assert [t["ip"] for t in body["addresses"]][:2] == ["1.0.0.1", "9.9.9.9"]
    async with c.client.get("/api/v1/addresses", headers={"If-None-Match": etag}) as r:
        assert (r.status, await r.read()) == (304, b"")
    async with c.client.get("/api/v1/addresses", headers={"If-None-Match": '"other"'}) as r:
        assert r.status == 200


async def test_the_document_is_cached_and_computed_again_in_the_background(
    c: Collector,
) -> None:
    cache = c.app[STATE].targets
    await cache.settled()  # the computation at start
    first, etag = await cache.get()
    assert json.loads(first)["addresses"] == []
    c.store.write(fill)
    assert await cache.get() == (first, etag)  # cached: not computed per request
    cache.invalidate()
    cache._at -= targets.MIN_AGE_SECONDS + 1  # the clock, moved past the minimum age
    assert await cache.get() == (first, etag)  # the one before, while computing again
    await cache.settled()
    second, etag2 = await cache.get()
    assert etag2 != etag
    assert len(json.loads(second)["addresses"]) == 6


async def test_the_cap_is_census_addresses_per_cycle(db_url: str) -> None:
    async with running(db_url, **{"census.addresses_per_cycle": 2}) as c:
        c.store.write(fill)
        await c.app[STATE].targets.refresh()
        async with c.client.get("/api/v1/addresses") as r:
            body = await r.json()
        assert [t["ip"] for t in body["addresses"]] == ["1.0.0.1", "9.9.9.9"]
