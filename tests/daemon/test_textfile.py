"""The daemon's metrics file for node_exporter: written at each beat, in the exposition format,
saying what the heartbeat says."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon.harness import ProbeProcess, collector_process
from tests.support.collector_process import CollectorProcess
from tests.support.dns_server import DNSServer

NAMES = ["a1", "a2", "a3"]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = collector_process(tmp_path, NAMES)
    yield c
    c.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_run_once_leaves_a_metrics_file_that_agrees_with_the_heartbeat(
    tmp_path: Path, dns_server: DNSServer, collector: CollectorProcess
) -> None:
    prom = tmp_path / "textfile" / "surblocage.prom"
    prom.parent.mkdir()
    p = ProbeProcess(
        tmp_path, dns_server.port, collector__url=collector.url, metrics={"textfile": str(prom)}
    )
    assert p.run("run", "--once", "--network", "Line ISP") == 0, p.log.read_text()
    text = prom.read_text()
    found = samples(text)
    beat = json.loads((p.state_dir / "heartbeat.json").read_text())
    assert found[("surblocage_probe_records_delivered_total", ())] == beat["spool"]["delivered"]
    assert beat["spool"]["delivered"] == len(NAMES)
    assert found[("surblocage_probe_spool_records", ())] == 0
    assert found[("surblocage_probe_last_cycle_targets", (("result", "measured"),))] == len(NAMES)
    info = [k for k in found if k[0] == "surblocage_probe_info"]
    assert dict(info[0][1])["network"] == "Line ISP"
    assert found[("process_resident_memory_bytes", ())] > 1_000_000
    assert found[("process_cpu_seconds_total", ())] > 0
    assert not prom.with_name("surblocage.prom.partial").exists()
    promtool = shutil.which("promtool")
    if promtool:  # the format as Prometheus's own linter reads it
        done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
