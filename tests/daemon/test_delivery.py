"""Uploads against the real collector app on loopback: batches, acknowledgements, refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils, web

from probe.client import CollectorClient, CollectorRefused, CollectorUnavailable
from probe.daemon import identity
from probe.daemon.delivery import Backoff, Delivery, Enrollment, OperatorMustAct
from probe.daemon.spool import Spool
from probe.times import rfc3339
from tests.daemon.conftest import InProcessCollector
from tests.daemon.harness import free_port
from tests.support.records import malformed
from tests.support.records import nxdomain as measurement


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool.db")


@pytest.fixture
async def uploader_for(
    tmp_path: Path, spool: Spool
) -> AsyncIterator[Callable[..., Awaitable[Delivery]]]:
    clients: list[CollectorClient] = []

    async def make(
        url: str, batch_size: int = 100, key: str | None = None, quarantine_after: int = 5
    ) -> Delivery:
        client = await CollectorClient(base_url=url, timeout_seconds=5).__aenter__()
        clients.append(client)
        enrollment = Enrollment(tmp_path / "state", url, asn=3215, network="Orange", key=key)
        ident = identity.load_identity(enrollment.state_dir)
        return Delivery(spool, client, enrollment, ident, batch_size, None, quarantine_after)

    yield make
    for c in clients:
        await c.__aexit__()


async def test_registers_then_delivers_every_record_in_batches(
    collector: InProcessCollector, spool: Spool, uploader_for: Any, tmp_path: Path
) -> None:
    for n in range(7):
        spool.add(measurement(n))
    up = await uploader_for(collector.url, batch_size=3)
    assert await up.upload_once() == 3  # the oldest three first
    await up.drain()
    assert spool.depth() == 0
    ident = identity.load_identity(tmp_path / "state")
    assert ident is not None and ident.collector == collector.url
    stored = collector.ids(probe_id=ident.probe_id)
    assert sorted(stored) == sorted(measurement(n).id for n in range(7))
    assert spool.stats().delivered == 7


async def test_sending_again_after_a_lost_acknowledgement_stores_nothing_twice(
    collector: InProcessCollector, spool: Spool, uploader_for: Any, caplog: Any
) -> None:
    for n in range(4):
        spool.add(measurement(n))
    up = await uploader_for(collector.url)
    await up.drain()
    for n in range(4):  # as if the probe died after the collector's commit, before its own
        spool.add(measurement(n))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="surblocage.probe"):
        await up.drain()
    delivered = [r for r in caplog.records if r.getMessage() == "batch delivered"]
    assert [r.fields["duplicates"] for r in delivered] == [4]  # type: ignore[attr-defined]
    assert len(collector.ids()) == 4


async def test_a_bad_record_is_isolated_and_quarantined_the_rest_delivered(
    collector: InProcessCollector, spool: Spool, uploader_for: Any
) -> None:
    for n in range(9):
        spool.add(malformed(n) if n == 5 else measurement(n))
    up = await uploader_for(collector.url, batch_size=4, quarantine_after=1)
    await up.drain()
    assert spool.depth() == 0
    assert sorted(collector.ids()) == sorted(measurement(n).id for n in range(9) if n != 5)
    [(qid, why)] = spool.quarantined()
    assert qid == measurement(5).id
    assert "HTTP 400" in why and "target.category" in why
    assert spool.stats().quarantined == 1
    assert up.limit == 4  # back to full batches once the record at fault is out


async def test_batches_too_big_for_the_collector_are_halved(
    make_collector: Any, spool: Spool, uploader_for: Any
) -> None:
    c = await make_collector(**{"limits.max_batch_records": 2})
    for n in range(5):
        spool.add(measurement(n))
    up = await uploader_for(c.url, batch_size=5)
    await up.drain()
    assert len(c.ids()) == 5
    assert spool.stats().quarantined == 0


async def test_an_unknown_token_keeps_the_records_and_asks_the_operator(
    collector: InProcessCollector, spool: Spool, uploader_for: Any, tmp_path: Path
) -> None:
    identity.save_identity(tmp_path / "state", "p-gone", "forgotten-token", collector.url)
    spool.add(measurement(1))
    up = await uploader_for(collector.url)
    with pytest.raises(OperatorMustAct, match="register --force"):
        await up.upload_once()
    assert spool.depth() == 1
    assert collector.ids() == []


async def test_a_closed_registration_keeps_the_records(
    make_collector: Any, spool: Spool, uploader_for: Any, tmp_path: Path
) -> None:
    c = await make_collector(**{"auth.enrollment_key": "club"})
    spool.add(measurement(1))
    up = await uploader_for(c.url)
    with pytest.raises(OperatorMustAct, match="enrollment_key"):
        await up.upload_once()
    assert identity.load_identity(tmp_path / "state") is None
    assert spool.depth() == 1
    up = await uploader_for(c.url, key="club")
    await up.drain()
    assert c.ids() == [measurement(1).id]


async def test_rate_limited_batches_stay_spooled(
    make_collector: Any, spool: Spool, uploader_for: Any
) -> None:
    c = await make_collector(**{"limits.rate_per_probe_per_minute": 1})
    for n in range(2):
        spool.add(measurement(n))
    up = await uploader_for(c.url, batch_size=1)
    assert await up.upload_once() == 1
    with pytest.raises(CollectorUnavailable, match="HTTP 429"):
        await up.upload_once()
    assert [s.id for s in spool.peek(5)] == [measurement(1).id]


async def test_an_unreachable_collector_keeps_the_records(spool: Spool, uploader_for: Any) -> None:
    spool.add(measurement(1))
    up = await uploader_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CollectorUnavailable, match="connection_refused"):
        await up.upload_once()
    assert spool.depth() == 1


async def test_a_captive_portal_ok_page_acknowledges_nothing(
    spool: Spool, uploader_for: Any, tmp_path: Path
) -> None:
    async def portal(request: web.Request) -> web.Response:
        return web.Response(
            text="<html>Welcome to the hotel Wi-Fi</html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", portal)
    async with test_utils.TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        identity.save_identity(tmp_path / "state", "p-1", "token", url)
        spool.add(measurement(1))
        up = await uploader_for(url)
        with pytest.raises(CollectorUnavailable, match="without a JSON answer"):
            await up.upload_once()
    assert spool.depth() == 1


def test_backoff_doubles_with_jitter_up_to_its_cap_and_resets() -> None:
    b = Backoff(base_seconds=5, cap_seconds=60, rand=lambda: 0.5)
    assert [b.failed() for _ in range(6)] == [3.75, 7.5, 15.0, 30.0, 45.0, 45.0]
    b.succeeded()
    assert b.failed() == 3.75
    low, high = Backoff(5, 60, rand=lambda: 0.0), Backoff(5, 60, rand=lambda: 1.0)
    assert (low.failed(), high.failed()) == (2.5, 5.0)


class StandIn:
    """A collector stand-in on loopback: refuses every batch holding a record of ``poison``
    with ``status``, takes the others, and remembers what it took."""

    def __init__(self, poison: set[str], status: int = 500) -> None:
        self.poison, self.status = poison, status
        self.taken: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/api/v1/measurements", self.submit)

    async def submit(self, request: web.Request) -> web.Response:
        ids = [r["id"] for r in (await request.json())["records"]]
        if self.poison & set(ids) or "*" in self.poison:
            return web.json_response({"error": "boom"}, status=self.status)
        self.taken += ids
        n = len(ids)
        return web.json_response({"accepted": n, "inserted": n, "duplicates": 0})


@pytest.fixture
async def stand_in_for(
    tmp_path: Path, uploader_for: Any
) -> AsyncIterator[Callable[..., Awaitable[tuple[StandIn, Delivery]]]]:
    servers: list[test_utils.TestServer] = []

    async def make(poison: set[str], status: int = 500, **kw: Any) -> tuple[StandIn, Delivery]:
        stand_in = StandIn(poison, status)
        server = test_utils.TestServer(stand_in.app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        url = str(server.make_url("")).rstrip("/")
        identity.save_identity(tmp_path / "state", "p-1", "token", url)
        return stand_in, await uploader_for(url, **kw)

    yield make
    for s in servers:
        await s.close()


async def drain_through_refusals(up: Delivery, attempts: int = 200) -> int:
    """Drain as `run` does, without its waits; return how many attempts ended in a refusal."""
    refused = 0
    for _ in range(attempts):
        try:
            await up.drain()
            return refused
        except CollectorUnavailable:
            refused += 1
    return refused


@pytest.mark.parametrize("status", [500, 400])
async def test_a_record_refused_again_and_again_is_quarantined_and_the_rest_delivered(
    spool: Spool, stand_in_for: Any, caplog: Any, status: int
) -> None:
    for n in range(40):
        spool.add(measurement(n))
    poison = measurement(3).id
    stand_in, up = await stand_in_for({poison}, status, batch_size=4)
    with caplog.at_level(logging.INFO, logger="surblocage.probe"):
        await drain_through_refusals(up)
    assert spool.depth() == 0
    assert sorted(stand_in.taken) == sorted(measurement(n).id for n in range(40) if n != 3)
    assert len(stand_in.taken) == 39  # each record taken once
    [(qid, why)] = spool.quarantined()
    assert (qid, why) == (poison, f"HTTP {status}: boom")
    assert (spool.stats().quarantined, spool.stats().quarantine_held) == (1, 1)
    [line] = [r for r in caplog.records if r.getMessage() == "record quarantined"]
    assert line.fields == {"id": poison, "why": f"HTTP {status}: boom", "times": 5}  # type: ignore[attr-defined]


async def test_a_collector_failing_for_everyone_quarantines_nothing(
    spool: Spool, stand_in_for: Any
) -> None:
    for n in range(12):
        spool.add(measurement(n))
    stand_in, up = await stand_in_for({"*"}, 503, batch_size=4)
    assert await drain_through_refusals(up, attempts=30) == 30
    assert spool.depth() == 12 and spool.stats().quarantined == 0
    stand_in.poison.clear()  # the collector is back
    assert await drain_through_refusals(up) == 0
    assert sorted(stand_in.taken) == sorted(measurement(n).id for n in range(12))
    assert spool.stats().quarantined == 0


async def test_two_poison_records_side_by_side_are_both_quarantined(
    spool: Spool, stand_in_for: Any
) -> None:
    for n in range(60):
        spool.add(measurement(n))
    poison = {measurement(4).id, measurement(5).id}
    stand_in, up = await stand_in_for(poison, 422, batch_size=8)
    await drain_through_refusals(up)
    assert {i for i, _ in spool.quarantined()} == poison
    assert len(stand_in.taken) == 58 and spool.depth() == 0


async def test_a_token_past_half_its_life_is_renewed_and_kept_before_delivering(
    make_collector: Any, spool: Spool, uploader_for: Any, tmp_path: Path
) -> None:
    c = await make_collector(**{"auth.token_ttl": 3600, "auth.token_grace": 0.01})
    state = tmp_path / "state"
    spool.add(measurement(1))
    up = await uploader_for(c.url)
    assert await up.upload_once() == 1  # registers: a fresh token, not renewed
    first = identity.load_identity(state)
    assert first is not None and first.token_expires_at is not None
    assert not first.needs_renewal(datetime.datetime.now(datetime.UTC))
    # as if issued an hour before it: more than half its life gone, it is due for renewal
    half_gone = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    aged = dataclasses.replace(first, token_issued_at=rfc3339(half_gone, "seconds"))
    up.identity = aged
    spool.add(measurement(2))
    assert await up.upload_once() == 1
    renewed = identity.load_identity(state)
    assert renewed is not None and renewed.probe_id == first.probe_id
    assert renewed.token != first.token
    assert renewed.token_issued_at != aged.token_issued_at
    assert sorted(c.ids(probe_id=first.probe_id)) == sorted(measurement(n).id for n in (1, 2))
    await asyncio.sleep(0.05)  # past the grace: only the renewed token is good
    refused = await CollectorClient(base_url=c.url, timeout_seconds=5).__aenter__()
    try:
        with pytest.raises(CollectorRefused, match="HTTP 401"):
            await refused.submit(first.token, [])
    finally:
        await refused.__aexit__()
