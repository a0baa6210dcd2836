"""The daemon loop on the step-map and clock seams: schedule, budgets, deadline, watchdog."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.client import CollectorClient
from probe.config import BusyWindow, ScheduleConfig
from probe.daemon.cycle import Cycle, CycleReport, WatchlistSource, estimated_bytes
from probe.daemon.schedule import Daemon, Heartbeat, Watchdog, cycle_deadline, next_delay
from probe.daemon.spool import Spool
from probe.flow import Flow, FlowOptions
from probe.record import DNSResult, HTTPResult, ProbeInfo, TCPResult, TLSResult
from probe.runner import Runner
from probe.watchlist import parse_watchlist
from tests.daemon.conftest import InProcessCollector
from tests.daemon.harness import free_port, watchlist
from tests.fake_steps import fake_steps

PARIS = datetime.timezone(datetime.timedelta(hours=1))  # Europe/Paris in November
SATURDAY_NOON = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=PARIS)
MATCHES = BusyWindow(datetime.time(13, 0), datetime.time(23, 0), 600.0, days=("sat",))


def test_the_usual_interval_plus_jitter() -> None:
    s = ScheduleConfig(interval_seconds=3600, jitter_seconds=300)
    assert next_delay(s, SATURDAY_NOON, lambda: 0.0) == 3600
    assert next_delay(s, SATURDAY_NOON, lambda: 1.0) == 3900


def test_a_busy_window_shortens_the_interval_and_caps_the_jitter() -> None:
    s = ScheduleConfig(interval_seconds=3600, jitter_seconds=500, busy_windows=(MATCHES,))
    at_kickoff = SATURDAY_NOON + datetime.timedelta(hours=2)
    assert next_delay(s, at_kickoff, lambda: 1.0) == 600 + 300  # jitter at most half


def test_a_window_about_to_open_wakes_the_probe_at_its_opening() -> None:
    s = ScheduleConfig(interval_seconds=3600, jitter_seconds=0, busy_windows=(MATCHES,))
    twenty_to_one = SATURDAY_NOON + datetime.timedelta(minutes=40)
    assert next_delay(s, twenty_to_one, lambda: 0.0) == 20 * 60


def test_the_cycle_deadline_grows_with_the_watchlist() -> None:
    assert cycle_deadline(8, 8, 30.0) == 1 * (30 + 60) + 60
    assert cycle_deadline(17, 8, 30.0) == 3 * (30 + 60) + 60


class FakeNet:
    """The step map seam: every target resolves, connects and serves ``body_bytes``."""

    def __init__(self, body_bytes: int = 1000, hang: set[str] | None = None) -> None:
        self.body_bytes, self.hang = body_bytes, hang or set()
        self.in_flight = self.most_in_flight = 0
        self.forever = asyncio.Event()  # never set: a step that never returns

    async def dns(self, spec: Any) -> DNSResult:
        answers = ["93.184.216.34"] if spec.qtype == "A" else []
        return DNSResult(spec.resolver, spec.qtype, None, 1, "NOERROR", answers, name=spec.name)

    async def tcp(self, spec: Any) -> TCPResult:
        return TCPResult(spec.ip, spec.port, None, 1)

    async def tls(self, spec: Any) -> TLSResult:
        return TLSResult(spec.ip, spec.port, spec.sni, None, 1, neutral=spec.neutral)

    async def http(self, spec: Any) -> HTTPResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if any(h in spec.url for h in self.hang):
                await self.forever.wait()
            return HTTPResult(spec.url, None, 1, status=200, body_length=self.body_bytes)
        finally:
            self.in_flight -= 1

    def runner(self, concurrency: int = 1) -> Runner:
        steps = fake_steps(self.dns, self.tcp, self.tls, self.http)
        opts = FlowOptions(resolver="192.0.2.53", target_timeout_seconds=60)
        return Runner(Flow(opts, steps), ProbeInfo(software="t"), None, None, concurrency)


def targets(n: int) -> list[Any]:
    return parse_watchlist(watchlist(f"t{i}" for i in range(n)), "test").targets()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool.db")


async def test_no_target_starts_once_the_cycle_budget_is_spent(spool: Spool) -> None:
    net = FakeNet(body_bytes=300_000)
    report = CycleReport(started_at="now")
    await Cycle(net.runner(), spool, 1_000_000).run(targets(10), frozenset(), report)
    per_target = 300_000 + 2 * 512 + 256 + 6144 + 2048  # A and AAAA, one address, no redirect
    assert (report.measured, report.skipped_budget) == (4, 6)
    assert report.bytes_estimated == 4 * per_target
    assert spool.depth() == 4


async def test_no_more_than_concurrency_targets_at_once(spool: Spool) -> None:
    net = FakeNet()
    report = CycleReport(started_at="now")
    await Cycle(net.runner(concurrency=3), spool, 10**9).run(targets(9), frozenset(), report)
    assert (report.measured, net.most_in_flight) == (9, 3)


def test_the_estimate_counts_bodies_and_handshakes() -> None:
    from tests.support.records import nxdomain as measurement

    m = measurement(1)
    assert estimated_bytes(m) == 512  # one DNS query, nothing fetched
    # a DoH or DoT query opens a connection of its own: its TCP and TLS handshakes count
    doh = dataclasses.replace(m.dns[0], transport="doh", path="doh")
    assert estimated_bytes(dataclasses.replace(m, dns=[m.dns[0], doh])) == 2 * 512 + 256 + 6144


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` while the loop runs the daemon; fail naming ``what`` after 15 s."""
    for _ in range(600):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


def daemon(tmp_path: Path, spool: Spool, net: FakeNet, file: Path, **kw: Any) -> Daemon:
    return Daemon(
        runner=net.runner(concurrency=2),
        spool=spool,
        watchlists=WatchlistSource(str(file), tmp_path, None),
        heartbeat=Heartbeat(tmp_path / "heartbeat.json", spool, {"resolver": "192.0.2.53"}),
        schedule=ScheduleConfig(interval_seconds=0.05, jitter_seconds=0),
        budget_bytes=10**9,
        target_timeout_seconds=60,
        **kw,
    )


async def test_a_stalled_cycle_is_abandoned_and_the_loop_goes_on(
    tmp_path: Path, spool: Spool, caplog: Any
) -> None:
    file = tmp_path / "wl.yaml"
    file.write_text(yaml.safe_dump(watchlist(["fast1", "fast2", "stuck", "fast3"])))
    net = FakeNet(hang={"stuck"})
    d = daemon(tmp_path, spool, net, file, deadline_seconds=0.5)
    report = await d.cycle()
    assert report.outcome == "abandoned"
    assert report.measured == spool.depth() >= 2  # what finished before the deadline is kept
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="surblocage"):
        task = asyncio.create_task(d.run(stop))
        await eventually(
            lambda: sum(r.getMessage() == "cycle abandoned" for r in caplog.records) >= 2,
            "two abandoned cycles",
        )
        stop.set()
        await task
    beat = json.loads((tmp_path / "heartbeat.json").read_text())
    assert beat["state"] == "stopped"
    assert beat["last_cycle"]["outcome"] in ("abandoned", "interrupted")


async def test_stopping_cancels_the_cycle_in_flight_and_keeps_what_finished(
    tmp_path: Path, spool: Spool
) -> None:
    file = tmp_path / "wl.yaml"
    file.write_text(yaml.safe_dump(watchlist(["a", "b", "stuck"])))
    d = daemon(tmp_path, spool, FakeNet(hang={"stuck"}), file)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    await eventually(lambda: spool.depth() >= 2, "two records spooled")
    stop.set()
    await task
    assert spool.depth() == 2
    beat = json.loads((tmp_path / "heartbeat.json").read_text())
    assert (beat["state"], beat["last_cycle"]["outcome"]) == ("stopped", "interrupted")
    assert beat["spool"]["depth"] == 2


def test_the_watchdog_fires_when_the_loop_stops_beating() -> None:
    fired = threading.Event()
    dog = Watchdog(0.2, on_stall=fired.set)
    dog.start()
    assert fired.wait(timeout=10)
    dog.stop()


def test_the_watchdog_stays_quiet_while_the_loop_beats() -> None:
    fired = threading.Event()
    dog = Watchdog(2.0, on_stall=fired.set)
    dog.start()
    for _ in range(30):  # 3 s of beats every 0.1 s, past the 2 s limit
        dog.beat()
        fired.wait(timeout=0.1)
    dog.stop()
    assert not fired.is_set()


async def test_the_collector_watchlist_is_cached_for_when_it_is_away(
    make_collector: Any, tmp_path: Path
) -> None:
    file = tmp_path / "served.yaml"
    file.write_text(yaml.safe_dump(watchlist(["one", "two"])))
    c: InProcessCollector = await make_collector(watchlist=str(file))
    async with CollectorClient(base_url=c.url, timeout_seconds=5) as client:
        wl, source = await WatchlistSource("collector", tmp_path, client).get()
    assert source == "collector" and wl is not None
    assert [s.id for s in wl.services] == ["one", "two"]
    away = f"http://127.0.0.1:{free_port()}"
    async with CollectorClient(base_url=away, timeout_seconds=5) as client:
        wl, source = await WatchlistSource("collector", tmp_path, client).get()
    assert source == "cache" and wl is not None
    assert [s.id for s in wl.services] == ["one", "two"]
    async with CollectorClient(base_url=away, timeout_seconds=5) as client:
        assert await WatchlistSource("collector", tmp_path / "new", client).get() == (None, "")


async def test_a_watchlist_from_the_network_is_checked(tmp_path: Path) -> None:
    hostile = watchlist(["x"])
    hostile["services"][0]["urls"] = ["http://10.0.0.1/admin"]
    (tmp_path / "watchlist.json").write_text(json.dumps(hostile))
    away = f"http://127.0.0.1:{free_port()}"
    async with CollectorClient(base_url=away, timeout_seconds=5) as client:
        assert await WatchlistSource("collector", tmp_path, client).get() == (None, "")
    allowed = (ipaddress.ip_network("10.0.0.0/8"),)
    async with CollectorClient(base_url=away, timeout_seconds=5) as client:
        wl, source = await WatchlistSource("collector", tmp_path, client, allowed).get()
    assert source == "cache" and wl is not None
