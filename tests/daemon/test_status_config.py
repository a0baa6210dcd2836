"""`status` shows the configuration the daemon runs with, command line included, not its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import ROOT, ProbeProcess, collector_process
from tests.support.collector_process import CollectorProcess
from tests.support.dns_server import DNSServer


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = collector_process(tmp_path, ["a1"])
    yield c
    c.stop()


def status(p: ProbeProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", "status", "--config", str(p.config), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_status_shows_the_daemons_network_and_settings_from_its_command_line(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess
) -> None:
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=collector.url)
    before = json.loads(status(p, "--json").stdout)
    assert before["config"]["of"] == "command"
    assert before["config"]["concurrency"] == 8
    argv = ["run", "--once", "--asn", "64501", "--network", "Line ISP", "--concurrency", "3"]
    assert p.run(*argv) == 0, p.log.read_text()
    found = json.loads(status(p, "--json").stdout)
    assert found["network"] == {"asn": 64501, "name": "Line ISP", "cc": "FR", "source": "daemon"}
    assert found["config"]["of"] == "daemon"
    assert found["config"]["concurrency"] == 3
    assert found["config"]["control"] is None  # the harness's config turns the control off
    assert found["config"]["file"] == str(p.config)
    text = status(p).stdout
    assert "AS64501 Line ISP (FR), declared in the daemon's configuration" in text
    assert "the daemon's: file" in text and "control off" in text and "3 targets at once" in text
