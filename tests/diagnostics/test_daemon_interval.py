"""The daemon's diagnostics: `run --once` records carry them, and a target is diagnosed once per
interval across runs (the state dir remembers); the startup log says when they are off."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.diagnostics import platform
from tests.daemon.harness import DOMAIN, ProbeProcess
from tests.support.dns_server import DNSServer, Zone, serving_in_thread


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A DNS server on 127.0.0.1 answering NXDOMAIN for every name not in its ``zones``."""
    with serving_in_thread(default=Zone(rcode="NXDOMAIN")) as server:
        yield server


def spooled(p: ProbeProcess) -> list[dict[str, Any]]:
    db = sqlite3.connect(p.state_dir / "spool.db")
    try:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM records ORDER BY seq")]
    finally:
        db.close()


def test_run_once_diagnoses_a_blocked_target_once_per_interval(
    tmp_path: Path, dns_server: DNSServer
) -> None:
    # Orange's answer for a blocked name (a fingerprint: blocked without a control)
    dns_server.zones[f"blocked.{DOMAIN}"] = Zone(addresses=["127.0.0.1"])
    file = tmp_path / "wl.yaml"
    file.write_text(
        "services:\n"
        f"  - {{id: b, name: b, category: general, urls: [https://blocked.{DOMAIN}/]}}\n"
        f"  - {{id: n, name: n, category: general, urls: [https://nx.{DOMAIN}/]}}\n"
    )
    p = ProbeProcess(
        tmp_path, dns_server.port, watchlist=str(file), network={"asn": 3215},
        diagnostics={"interval": 3600}, census={"enabled": False},
    )  # fmt: skip
    assert p.run("run", "--once") == 0
    assert p.run("run", "--once") == 0
    records = spooled(p)
    blocked = [r for r in records if r["target"]["service"] == "b"]
    other = [r for r in records if r["target"]["service"] == "n"]
    assert [r["verdict"]["status"] for r in blocked] == ["blocked", "blocked"]
    assert [r["diagnostics"] for r in other] == [None, None]
    off = platform.unavailable()
    if off is None:  # raw sockets here (root): the first run diagnoses, the second waits
        first, second = (r["diagnostics"] for r in blocked)
        # the resolver is on loopback, the answer a loopback address: nothing may be sent
        assert first == {
            "dns_injection": None, "reset_origin": None, "location": None, "packets": 0,
            "malformed": 0, "duration_ms": first["duration_ms"],
        }  # fmt: skip
        assert second == {"skipped": "interval"}
        assert (p.state_dir / "diagnosed.json").exists()
        assert p.events("diagnostics off") == []
    else:
        assert [r["diagnostics"] for r in blocked] == [{"skipped": off}] * 2
        # said once a start: two runs, two lines
        assert [e["why"] for e in p.events("diagnostics off")] == [off, off]
