"""`surblocage-probe check --sweep` as a real process, against the strict loopback collector."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe import failures
from probe.sweep import NEUTRAL_SNI
from tests.support.census_collector import CensusCollector, check_sweep, serving_in_thread
from tests.sweep.conftest import TLSListener

ROOT = Path(__file__).resolve().parents[2]


def probe(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "probe", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def collector() -> Iterator[CensusCollector]:
    with serving_in_thread(CensusCollector()) as c:
        yield c


def published(
    own_ip: str, listener: TLSListener, filter: TLSListener, closed: int
) -> dict[str, Any]:
    return {
        "addresses": [
            {"ip": own_ip, "port": listener.port, "sni": "open.example", "reasons": ["shared"],
             "domains": 3},
            {"ip": own_ip, "port": filter.port, "sni": "blocked.example", "reasons": ["flagged"],
             "domains": 1},
            {"ip": own_ip, "port": closed, "sni": "gone.example", "reasons": [], "domains": 0},
            {"ip": "10.9.9.9", "port": 443, "sni": "private.example", "reasons": [], "domains": 0},
            {"ip": own_ip, "port": 70000, "sni": "bad-port.example"},
        ],
        "generated_at": "2026-12-06T04:00:00Z",
    }  # fmt: skip


def sweep_args(collector: CensusCollector, own_ip: str, tmp_path: Path, *more: str) -> list[str]:
    return [
        "check", "--sweep", "--collector", collector.url, "--allow-network", f"{own_ip}/32",
        "--timeout", "2", "--state-dir", str(tmp_path / "state"), "--quiet", *more,
    ]  # fmt: skip


def test_json_lines_are_the_sweep_documents(
    collector: CensusCollector,
    own_ip: str,
    own_listener: TLSListener,
    own_filter: TLSListener,
    own_closed_port: int,
    tmp_path: Path,
) -> None:
    collector.addresses = published(own_ip, own_listener, own_filter, own_closed_port)
    done = probe(*sweep_args(collector, own_ip, tmp_path, "--json", "--network", "Lab"))
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(docs) == 1
    check_sweep(docs[0], "stdout")
    assert docs[0]["probe"]["network"] == "Lab"
    steps = [(e["sni"], e["tcp"], e.get("tls", "-"), e.get("tls_neutral", "-"))
             for e in docs[0]["entries"]]  # fmt: skip
    assert steps == [
        ("open.example", None, None, "-"),
        ("blocked.example", None, failures.CONNECTION_RESET, None),
        ("gone.example", failures.CONNECTION_REFUSED, "-", "-"),
    ]  # the private address and the bad port are left out
    assert own_listener.names == ["open.example"]
    assert own_filter.names == [NEUTRAL_SNI]
    # not uploaded: the collector saw the list asked for, nothing posted
    assert [(m, p) for m, p, _ in collector.requests] == [("GET", "/api/v1/addresses")]


def test_the_table_has_a_row_an_address(
    collector: CensusCollector,
    own_ip: str,
    own_listener: TLSListener,
    own_filter: TLSListener,
    own_closed_port: int,
    tmp_path: Path,
) -> None:
    collector.addresses = published(own_ip, own_listener, own_filter, own_closed_port)
    done = probe(*sweep_args(collector, own_ip, tmp_path))
    assert done.returncode == 0, done.stderr
    head, *rows = done.stdout.splitlines()
    assert head.split() == ["ip", "sni", "tcp", "tls", "tls_neutral", "ms"]
    cells = [r.split()[:5] for r in rows]
    assert cells == [
        [f"{own_ip}:{own_listener.port}", "open.example", "ok", "ok", "-"],
        [f"{own_ip}:{own_filter.port}", "blocked.example", "ok", "connection_reset", "ok"],
        [f"{own_ip}:{own_closed_port}", "gone.example", "connection_refused", "-", "-"],
    ]


def test_progress_goes_to_standard_error(
    collector: CensusCollector,
    own_ip: str,
    own_listener: TLSListener,
    own_filter: TLSListener,
    own_closed_port: int,
    tmp_path: Path,
) -> None:
    collector.addresses = published(own_ip, own_listener, own_filter, own_closed_port)
    args = [a for a in sweep_args(collector, own_ip, tmp_path, "--json") if a != "--quiet"]
    done = probe(*args)
    assert done.returncode == 0, done.stderr
    assert "3/3 addresses swept, 2 failed" in done.stderr


def test_without_a_collector_it_is_a_usage_error(tmp_path: Path) -> None:
    done = probe("check", "--sweep", "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "surblocage-probe: error: check: --sweep needs a collector: give --collector URL or "
        "collector.url"
    ]


def test_targets_and_sweep_together_are_a_usage_error(tmp_path: Path) -> None:
    done = probe("check", "--sweep", "--collector", "http://127.0.0.1:9", "example.org")
    assert done.returncode == 2
    assert "--sweep takes no URL_OR_DOMAIN" in done.stderr


def test_a_collector_without_addresses_is_said_in_one_line(
    collector: CensusCollector, own_ip: str, tmp_path: Path
) -> None:
    collector.addresses = None  # answers 404, as a collector older than the census
    done = probe(*sweep_args(collector, own_ip, tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().endswith("publishes no addresses to sweep")
    assert done.stdout == ""


def test_a_collector_away_is_a_runtime_failure(own_ip: str, tmp_path: Path) -> None:
    away = CensusCollector(url="http://127.0.0.1:9")
    done = probe(*sweep_args(away, own_ip, tmp_path))
    assert done.returncode == 1
    assert "address list" in done.stderr and len(done.stderr.splitlines()) == 1
