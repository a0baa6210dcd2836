"""`run --no-control`: the daemon measures without ever calling the collector's control."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import ProbeProcess, collector_process
from tests.support.collector_process import CollectorProcess
from tests.support.dns_server import DNSServer

NAMES = ["a1", "a2"]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = collector_process(tmp_path, NAMES)
    yield c
    c.stop()


def control_requests(collector: CollectorProcess) -> float:
    """The collector's own count of requests to its control route, from /metrics."""
    with urllib.request.urlopen(f"{collector.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    pattern = r'^surblocage_http_requests_total\{[^}]*route="/api/v1/control"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


@pytest.mark.parametrize("no_control", [True, False])
def test_run_no_control_never_calls_the_control(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess, no_control: bool
) -> None:
    # the config enables the control; only the command-line switch turns it off
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=collector.url, control={})
    argv = ["run", "--once", *(["--no-control"] if no_control else [])]
    assert p.run(*argv) == 0, p.log.read_text()
    assert len(collector.ids(p.probe_id())) == len(NAMES)
    calls = control_requests(collector)
    assert (calls == 0) if no_control else (calls > 0), calls
