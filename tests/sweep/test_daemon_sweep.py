"""The daemon's sweep end to end: real probe processes, the strict loopback collector."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe import failures
from tests.daemon.harness import DOMAIN, ROOT, ProbeProcess, wait_until
from tests.support.census_collector import PROBE_ID, CensusCollector, serving_in_thread
from tests.support.dns_server import DNSServer, Zone
from tests.sweep.conftest import TLSListener


@pytest.fixture
def collector() -> Iterator[CensusCollector]:
    with serving_in_thread(CensusCollector()) as c:
        yield c


def setup(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    listener: TLSListener,
    closed_port: int,
    **settings: Any,
) -> ProbeProcess:
    """One watched service on this host's address, two addresses published, and the probe."""
    dns_server.zones[f"svc.{DOMAIN}"] = Zone(addresses=[own_ip])
    url = f"https://svc.{DOMAIN}:{listener.port}/"
    collector.watchlist = {
        "services": [{"id": "svc", "name": "svc", "category": "general", "urls": [url]}]
    }
    collector.addresses = {
        "addresses": [
            {"ip": own_ip, "port": listener.port, "sni": "blocked.example"},
            {"ip": own_ip, "port": closed_port, "sni": "gone.example"},
        ],
        "generated_at": "2026-12-06T04:00:00Z",
    }
    return ProbeProcess(
        tmp_path,
        dns_server.port,
        collector__url=collector.url,
        network__allow_networks=[f"{own_ip}/32"],
        **settings,
    )


def sweeps_spooled(p: ProbeProcess) -> list[str]:
    path = p.state_dir / "spool.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [i for (i,) in db.execute("SELECT id FROM sweeps ORDER BY seq")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        db.close()


def test_run_once_delivers_records_and_sweeps(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    own_filter: TLSListener,
    own_closed_port: int,
) -> None:
    p = setup(tmp_path, dns_server, collector, own_ip, own_filter, own_closed_port)
    assert p.run("run", "--once") == 0, p.log.read_text()[-2000:]
    assert len(collector.records) == 1
    assert collector.errors == []  # every document as the spec has it
    (doc,) = collector.sweeps.values()
    assert doc["probe"]["id"] == PROBE_ID
    assert [(e["sni"], e["tcp"], e.get("tls"), e.get("tls_neutral")) for e in doc["entries"]] == [
        ("blocked.example", None, failures.CONNECTION_RESET, None),
        ("gone.example", failures.CONNECTION_REFUSED, None, None),
    ]
    assert ("POST", "/api/v1/sweeps", "gzip") in collector.requests
    out = p.out.read_text()
    assert "2 addresses swept, 2 failed, 0 skipped" in out
    assert "2/2 addresses swept, 2 failed" in p.log.read_text()  # the progress, on stderr
    assert sweeps_spooled(p) == []
    status = json.loads(_status(p))
    assert status["last_sweep"]["addresses"] == 2
    assert status["last_sweep"]["failures"] == 2
    assert status["spool"]["sweeps_delivered"] == 1


def _status(p: ProbeProcess) -> str:
    argv = [sys.executable, "-m", "probe", "status", "--json", "--config", str(p.config)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_no_sweep_turns_it_off(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    own_filter: TLSListener,
    own_closed_port: int,
) -> None:
    p = setup(tmp_path, dns_server, collector, own_ip, own_filter, own_closed_port)
    assert p.run("run", "--once", "--no-sweep") == 0
    assert len(collector.records) == 1
    assert ("GET", "/api/v1/addresses", "") not in collector.requests
    assert collector.sweeps == {}


def test_census_enabled_false_turns_it_off(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    own_filter: TLSListener,
    own_closed_port: int,
) -> None:
    p = setup(tmp_path, dns_server, collector, own_ip, own_filter, own_closed_port,
              census__enabled=False)  # fmt: skip
    assert p.run("run", "--once") == 0
    assert ("GET", "/api/v1/addresses", "") not in collector.requests


def test_an_older_collector_means_no_sweep_and_one_info_line(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    own_filter: TLSListener,
    own_closed_port: int,
) -> None:
    p = setup(tmp_path, dns_server, collector, own_ip, own_filter, own_closed_port)
    collector.addresses = None  # 404
    assert p.run("run", "--once") == 0
    assert len(collector.records) == 1
    lines = [e for e in p.events() if "publishes no addresses" in e["msg"]]
    assert [e["level"] for e in lines] == ["info"]
    assert collector.sweeps == {}


def test_spooled_sweeps_survive_a_kill_and_leave_later(
    tmp_path: Path,
    dns_server: DNSServer,
    collector: CensusCollector,
    own_ip: str,
    own_filter: TLSListener,
    own_closed_port: int,
) -> None:
    p = setup(tmp_path, dns_server, collector, own_ip, own_filter, own_closed_port,
              schedule__interval_seconds=3600)  # fmt: skip
    collector.refuse_sweeps = 503  # the collector fails: the sweep waits in the spool
    p.start("run")
    try:
        kept = wait_until(lambda: sweeps_spooled(p), "a sweep in the spool")
        wait_until(lambda: ("POST", "/api/v1/sweeps", "gzip") in collector.requests, "an attempt")
    finally:
        p.kill()
    assert collector.sweeps == {}
    collector.refuse_sweeps = None
    assert p.run("run", "--once") == 0
    assert set(kept) <= set(collector.sweeps)  # the killed daemon's sweep, delivered now
    assert len(collector.sweeps) == 2  # and this cycle's
    assert sweeps_spooled(p) == []
