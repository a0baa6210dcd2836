"""The daemon's metrics as a Prometheus text file, for node_exporter's textfile collector.

A volunteer's probe serves no HTTP (nothing listens on a home line); with `metrics.textfile`
set, each heartbeat rewrites that file (atomically) with the probe's figures and its process's,
in the exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
Written by hand: the probe does not depend on prometheus_client.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from probe.times import parse_rfc3339

_STARTED = time.time()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _label(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _stamp(value: Any) -> float | None:
    try:
        return parse_rfc3339(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


def _metric(
    name: str, kind: str, help: str, samples: list[tuple[str, float | None]]
) -> Iterator[str]:
    kept = [(labels, v) for labels, v in samples if v is not None]
    if not kept:
        return
    yield f"# HELP {name} {help}"
    yield f"# TYPE {name} {kind}"
    for labels, value in kept:
        yield f"{name}{labels} {float(value)!r}"


def _resident_bytes() -> float | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return float(int(f.read().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError):
        return None


def render(beat: Mapping[str, Any]) -> str:
    """Return the exposition text of a heartbeat document (probe/daemon/schedule.py)."""
    cycle = beat.get("last_cycle") or {}
    spool = beat.get("spool") or {}
    network = (beat.get("config") or {}).get("network") or {}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    info = (
        f'{{version="{_label(beat.get("software"))}",network="{_label(network.get("name"))}",'
        f'asn="{_label(network.get("asn"))}"}}'
    )
    results = ("targets", "measured", "blocked", "skipped_budget", "dropped")
    table: list[tuple[str, str, str, list[tuple[str, float | None]]]] = [
        ("surblocage_probe_info", "gauge", "The probe's software and declared network.",
         [(info, 1)]),
        ("surblocage_probe_heartbeat_timestamp_seconds", "gauge",
         "When the daemon last wrote its heartbeat.", [("", _stamp(beat.get("beat_at")))]),
        ("surblocage_probe_last_cycle_start_timestamp_seconds", "gauge",
         "When the last cycle started.", [("", _stamp(cycle.get("started_at")))]),
        ("surblocage_probe_last_cycle_end_timestamp_seconds", "gauge",
         "When the last cycle ended.", [("", _stamp(cycle.get("finished_at")))]),
        ("surblocage_probe_last_cycle_targets", "gauge",
         "Targets of the last cycle, by what became of them.",
         [(f'{{result="{k}"}}', cycle.get(k)) for k in results]),
        ("surblocage_probe_spool_records", "gauge",
         "Records waiting in the spool for the collector.", [("", spool.get("depth"))]),
        ("surblocage_probe_records_delivered_total", "counter",
         "Records the collector accepted.", [("", spool.get("delivered"))]),
        ("surblocage_probe_records_dropped_total", "counter",
         "Records dropped from the spool, by why.",
         [('{reason="full"}', spool.get("dropped_full")),
          ('{reason="old"}', spool.get("dropped_old"))]),
        ("surblocage_probe_records_quarantined_total", "counter",
         "Records set aside after repeated refusals.", [("", spool.get("quarantined"))]),
        ("surblocage_probe_last_upload_timestamp_seconds", "gauge",
         "When the collector last accepted records.",
         [("", _stamp(spool.get("last_upload_at")))]),
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent.",
         [("", round(usage.ru_utime + usage.ru_stime, 3))]),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         [("", _resident_bytes())]),
        ("process_max_resident_memory_bytes", "gauge", "Peak resident memory in bytes.",
         [("", float(usage.ru_maxrss * 1024))]),
        ("process_start_time_seconds", "gauge", "Start time of the process.",
         [("", round(_STARTED, 3))]),
    ]  # fmt: skip
    lines = [line for row in table for line in _metric(*row)]
    return "\n".join(lines) + "\n"


def write(path: Path, beat: Mapping[str, Any]) -> None:
    """Replace ``path`` with the metrics of ``beat``: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render(beat), encoding="utf-8")
    os.chmod(partial, 0o644)  # node_exporter runs as another user
    os.replace(partial, path)
