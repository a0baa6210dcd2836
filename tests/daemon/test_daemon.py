"""The daemon end to end: `surblocage-probe run` processes against a real collector process.

Targets are names under surblocage.test that the loopback DNS server answers NXDOMAIN (fast) or
not at all (a slow target, to be in the middle of a cycle). Records need not be "ok": they must
exist and reach the collector exactly once, whatever happens to either process.
"""

from __future__ import annotations

import collections
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.daemon.harness import (
    DOMAIN,
    ProbeProcess,
    collector_process,
    free_port,
    wait_until,
    watchlist,
)
from tests.daemon.proxy import HoldingProxy
from tests.support.collector_process import CollectorProcess
from tests.support.dns_server import DNSServer, Zone

NAMES = ["a1", "a2", "a3", "a4", "a5"]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = collector_process(tmp_path, NAMES)
    yield c
    c.stop()


def repeats(ids: list[str]) -> list[str]:
    return [i for i, n in collections.Counter(ids).items() if n > 1]


def integrity(p: ProbeProcess) -> str:
    db = sqlite3.connect(p.state_dir / "spool.db")
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def test_run_once_submits_every_target(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess
) -> None:
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=collector.url)
    assert p.run("run", "--once") == 0, p.log.read_text()
    spooled = p.spooled_ids()
    stored = collector.ids(p.probe_id())
    assert len(spooled) == len(NAMES)
    assert sorted(stored) == sorted(spooled)
    assert p.spool_ids() == []
    assert p.out.read_text().strip() == (
        "5 of 5 targets measured, 0 blocked, 0 skipped (budget); 0 addresses swept, 0 failed, "
        "0 skipped; records submitted"
    )
    beat = json.loads((p.state_dir / "heartbeat.json").read_text())
    assert (beat["state"], beat["last_cycle"]["outcome"]) == ("stopped", "done")
    assert (beat["spool"]["depth"], beat["spool"]["delivered"]) == (0, 5)


def test_records_made_while_the_collector_is_down_arrive_once_it_is_back(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess
) -> None:
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=collector.url)
    p.start("run", "--retry-max", "0.5")
    wait_until(lambda: p.events("batch delivered"), "a first delivery")
    collector.stop()
    cycles_before = len(p.events("cycle done"))
    wait_until(lambda: len(p.events("cycle done")) >= cycles_before + 3, "3 cycles, no collector")
    made_while_down = p.spooled_ids()
    assert p.events("upload failed"), "the collector was down: uploads must have failed"
    collector.start()
    wait_until(
        lambda: set(made_while_down) <= set(collector.ids(p.probe_id())), "the backlog delivered"
    )
    assert p.kill(signal.SIGTERM) == 0
    stored = collector.ids(p.probe_id())
    assert repeats(stored) == []
    assert set(stored) | set(p.spool_ids()) == set(p.spooled_ids())


@pytest.fixture
def proxy(collector: CollectorProcess) -> Iterator[HoldingProxy]:
    p = HoldingProxy(collector.port)
    yield p
    p.close()


def test_kill_9_during_an_upload_loses_and_duplicates_nothing(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess, proxy: HoldingProxy
) -> None:
    proxy.hold.set()
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=proxy.url)
    p.start("run")
    wait_until(proxy.held.is_set, "an upload whose answer the proxy holds")
    first = wait_until(lambda: collector.ids(p.probe_id()), "the held batch stored")
    assert p.kill() == -signal.SIGKILL
    assert set(first) <= set(p.spool_ids())  # stored, but not acknowledged to the probe
    assert integrity(p) == "ok"
    proxy.hold.clear()
    assert p.run("run", "--once") == 0, p.log.read_text()
    stored = collector.ids(p.probe_id())
    assert repeats(stored) == []
    assert sorted(stored) == sorted(set(p.spooled_ids()))
    assert sum(e["duplicates"] for e in p.events("batch delivered")) >= len(first)
    assert p.spool_ids() == []


def test_kill_9_in_the_middle_of_a_cycle_loses_and_duplicates_nothing(
    tmp_path: Path, dns_server: DNSServer
) -> None:
    names = ["b1", "b2", "slow", "b3"]
    c = collector_process(tmp_path, names)
    try:
        dns_server.zones[f"slow.{DOMAIN}"] = Zone(silent=True)
        p = ProbeProcess(
            tmp_path,
            dns_server.port,
            collector__url=c.url,
            concurrency=1,
            timeouts={"dns": 8, "tcp": 1, "tls": 1, "http": 1, "target": 10},
        )
        p.start("run")
        # the next target starts while the previous ones' DNS listens end (Flow.measure's gate)
        wait_until(
            lambda: f"slow.{DOMAIN}" in dns_server.names() and len(p.spooled_ids()) == 2,
            "the slow target in flight, the two before it spooled",
        )
        assert len(p.spooled_ids()) == 2  # b1 and b2 are done, slow is not, b3 not started
        assert p.kill() == -signal.SIGKILL
        assert integrity(p) == "ok"
        dns_server.zones.clear()
        assert p.run("run", "--once") == 0, p.log.read_text()
        stored = c.ids(p.probe_id())
        assert repeats(stored) == []
        assert sorted(stored) == sorted(p.spooled_ids())
        services = collections.Counter(e["service"] for e in p.events("record spooled"))
        assert services == {"b1": 2, "b2": 2, "slow": 1, "b3": 1}
    finally:
        c.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_daemon_cleanly(
    tmp_path: Path, dns_server: DNSServer, sig: signal.Signals
) -> None:
    dns_server.zones[f"a3.{DOMAIN}"] = Zone(silent=True)
    down = f"http://127.0.0.1:{free_port()}"  # nothing leaves the spool
    p = ProbeProcess(
        tmp_path,
        dns_server.port,
        collector__url=down,
        concurrency=1,
        timeouts={"dns": 8, "target": 10},
    )
    file = tmp_path / "wl.yaml"
    file.write_text(yaml.safe_dump(watchlist(NAMES)))
    p.start("run", "--watchlist", str(file))
    wait_until(
        lambda: f"a3.{DOMAIN}" in dns_server.names() and len(p.spooled_ids()) == 2,
        "a target in flight, the two before it spooled",
    )
    assert p.kill(sig) == 0
    [stopped] = p.events("stopped")
    assert (stopped["signal"], stopped["spooled"]) == (sig.name, 2)
    assert integrity(p) == "ok"
    assert p.spool_ids() == p.spooled_ids()
    beat = json.loads((p.state_dir / "heartbeat.json").read_text())
    assert (beat["state"], beat["last_cycle"]["outcome"]) == ("stopped", "interrupted")


def test_past_the_cap_the_oldest_records_are_dropped_and_counted(
    tmp_path: Path, dns_server: DNSServer
) -> None:
    file = tmp_path / "wl.yaml"
    file.write_text(yaml.safe_dump(watchlist(["c1", "c2", "c3"])))
    p = ProbeProcess(
        tmp_path,
        dns_server.port,
        watchlist=str(file),
        spool={"max_records": 4},
        schedule={"interval_seconds": 0.2, "jitter_seconds": 0},
    )
    p.start("run")
    wait_until(lambda: len(p.events("cycle done")) >= 3, "three cycles (9 records)")
    assert p.kill(signal.SIGTERM) == 0
    spooled = p.spooled_ids()
    assert p.spool_ids() == spooled[-4:]  # the newest four, in order
    assert p.events("spool full: oldest records dropped")
    status = subprocess.run(
        [sys.executable, "-m", "probe", "status", "--json", "--config", str(p.config)],
        capture_output=True,
        text=True,
        check=True,
    )
    spool = json.loads(status.stdout)["spool"]
    assert (spool["depth"], spool["dropped_full"]) == (4, len(spooled) - 4)
