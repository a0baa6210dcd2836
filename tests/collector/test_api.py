"""A probe registers, submits, resubmits; a researcher's query returns each record once."""

from __future__ import annotations

import pathlib

from collector.judge import open_store
from tests.collector.harness import Collector, batch, count, record, record_id, running


async def test_resubmitted_batch_is_stored_once(collector: Collector) -> None:
    probe_id, token = await collector.register(asn=3215, network="Orange")
    assert await collector.submit(token, batch(range(5))) == (
        200,
        {"accepted": 5, "inserted": 5, "duplicates": 0},
    )
    assert await collector.submit(token, batch(range(5))) == (
        200,
        {"accepted": 5, "inserted": 0, "duplicates": 5},
    )
    # a retry that overlaps: three old records, two new ones
    assert await collector.submit(token, batch(range(2, 7))) == (
        200,
        {"accepted": 5, "inserted": 2, "duplicates": 3},
    )
    items = await collector.query_all(limit="2")
    assert [i["id"] for i in items] == sorted(record_id(n) for n in range(7))
    assert {i["probe"]["id"] for i in items} == {probe_id}
    assert count(collector.store) == 7


async def test_query_returns_the_collectors_verdict_and_keeps_the_probes(
    collector: Collector,
) -> None:
    _, token = await collector.register()
    claimed = record(1)
    claimed["verdict"] = {"status": "ok", "method": None, "detail": None, "blockpage": None}
    assert (await collector.submit(token, {"records": [claimed]}))[0] == 200
    [item] = await collector.query_all(service="mycanal")
    # 127.0.0.1 from the resolver is a bogon: the collector decides, whatever the probe said
    assert item["verdict"]["status"] == "blocked"
    assert item["verdict"]["method"] == "dns"
    assert item["probe_verdict"]["status"] == "ok"
    assert await collector.query_all(status="ok") == []
    assert [i["id"] for i in await collector.query_all(status="blocked")] == [record_id(1)]


async def test_healthz_says_the_database_answers(collector: Collector) -> None:
    async with collector.client.get("/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok", "database": "ok"}


# nothing listens on the discard port of loopback: every connection is refused at once
DEAD_DATABASE = "postgresql://surblocage:secret@127.0.0.1:9/surblocage"


async def test_healthz_degraded_when_the_database_does_not_answer(sqlite_url: str) -> None:
    with open_store(DEAD_DATABASE) as dead:
        async with running(sqlite_url, store=dead) as c, c.client.get("/healthz") as r:
            assert r.status == 503
            body = await r.json()
    assert body["status"] == "degraded"
    assert body["database"] == "unavailable"
    assert "secret" not in str(body)


async def test_healthz_degraded_on_an_unmigrated_database(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    with open_store(url) as db:
        async with running(url, store=db) as c, c.client.get("/healthz") as r:
            assert r.status == 503
            assert (await r.json())["status"] == "degraded"
