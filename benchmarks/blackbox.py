"""Side by side: the probe and Prometheus blackbox_exporter's http module, same lab, same targets.

usage: python -m benchmarks.blackbox [--concurrency 8 32 64] [--runs 5] [--targets 200]

blackbox_exporter (Debian's /usr/bin/prometheus-blackbox-exporter) runs as a daemon in the
probe namespace, listening on 127.0.0.1:9115 there, with the lab CA and ``preferred_ip_protocol:
ip4`` (fallback on, so it asks A and AAAA at once, as the probe does). It resolves with Go's
resolver, which reads /etc/resolv.conf: `ip netns exec` mounts the probe namespace's own file
there, naming ISP a's resolver, the one the probe is told to test. A driver in the same
namespace issues one /probe request per target, ``concurrency`` at a time. Runs alternate (probe,
exporter, probe, ...) so both see the same machine load. The exporter's CPU is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import re
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from benchmarks import figures, probe_cycle, rig
from tests.lab.topology import Lab

EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
LISTEN = ("127.0.0.1", 9115)
MODULE = "http_lab"
CONFIG = """\
modules:
  http_lab:
    prober: http
    timeout: 15s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
"""
_SAMPLE = re.compile(r'^(\w+)(?:\{phase="(\w+)"\})? (\S+)$', re.MULTILINE)


def start_exporter(lab: Lab) -> int:
    """Start the exporter in the probe namespace; return its pid."""
    config = pathlib.Path(lab.workdir) / "blackbox.yml"
    config.write_text(CONFIG.format(ca=lab.ca_file))
    argv = [
        EXPORTER, f"--config.file={config}", f"--web.listen-address={LISTEN[0]}:{LISTEN[1]}",
        "--log.level=warn",
    ]  # fmt: skip
    return lab.spawn("probe_a", argv, "blackbox", ready_tcp=LISTEN).popen.pid


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


async def drive(urls: list[str], concurrency: int) -> tuple[float, list[dict[str, float]]]:
    """Ask the exporter to probe every URL, ``concurrency`` at a time; return wall and samples."""
    sem = asyncio.Semaphore(concurrency)
    base = f"http://{LISTEN[0]}:{LISTEN[1]}/probe"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> dict[str, float]:
            async with sem, session.get(base, params={"module": MODULE, "target": url}) as r:
                text = await r.text()
            return {(p or name): float(v) for name, p, v in _SAMPLE.findall(text)}

        started = time.perf_counter()
        found = await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - started, list(found)


def exporter_run(lab: Lab, pid: int, urls: list[str], concurrency: int) -> dict[str, Any]:
    """Run one cycle through the exporter; return wall, CPU per 1k, bytes per 1k, phases."""
    before_bytes, before_cpu = rig.wire_bytes(lab), rig.cpu_seconds(pid)
    wall, samples = lab.run("probe_a", drive, urls, concurrency)
    cpu = rig.cpu_seconds(pid) - before_cpu
    moved = rig.wire_bytes(lab) - before_bytes
    if len(samples) != len(urls):
        sys.exit(f"blackbox_exporter answered {len(samples)} of {len(urls)} requests")
    failed = [
        u for u, s in zip(urls, samples, strict=True) if s.get("probe_http_status_code") != 200
    ]
    if failed:
        sys.exit(f"blackbox_exporter failed {len(failed)} targets, e.g. {failed[:3]}")
    phases = ("resolve", "connect", "tls", "processing", "transfer")
    per_k = 1000 / len(urls)
    return {
        "wall": wall,
        "cpu_per_k": cpu * per_k,
        "mb_per_k": moved * per_k / 1e6,
        "phases": {p: statistics.median(s[p] * 1000 for s in samples) for p in phases},
        "duration": statistics.median(s["probe_duration_seconds"] * 1000 for s in samples),
    }


def compare(lab: Lab, pid: int, urls: list[str], c: int, runs: int) -> None:
    """Alternate probe and exporter cycles at one concurrency, then print both side by side."""
    probe_runs, bb_runs = [], []
    for i in range(runs):
        probe_runs.append(probe_cycle.one_run(lab, urls, c, None))
        bb_runs.append(exporter_run(lab, pid, urls, c))
        p, b = probe_runs[-1], bb_runs[-1]
        print(
            f"   c={c} run {i + 1}: probe cycle {p['cycle']:.2f} s (process {p['wall']:.2f} s), "
            f"CPU {p['cpu_per_k']:.2f} s/1k | blackbox {b['wall']:.2f} s, CPU "
            f"{b['cpu_per_k']:.2f} s/1k | {figures.load()}",
            flush=True,
        )
    bound = probe_cycle.lower_bound_seconds(30.0, len(urls), c)
    print(f"-- side by side, concurrency {c} (lower bound {bound:.2f} s)")
    for name, key, unit, rows in (
        ("probe cycle", "cycle", " s", probe_runs),
        ("probe process wall", "wall", " s", probe_runs),
        ("blackbox wall", "wall", " s", bb_runs),
        ("probe CPU per 1k", "cpu_per_k", " s", probe_runs),
        ("blackbox CPU per 1k", "cpu_per_k", " s", bb_runs),
        ("probe MB per 1k", "mb_per_k", " MB", probe_runs),
        ("blackbox MB per 1k", "mb_per_k", " MB", bb_runs),
    ):
        print(f"   {name:<20} {figures.summary([r[key] for r in rows], unit)}")
    phases = ", ".join(f"{k} {v:.0f}" for k, v in bb_runs[-1]["phases"].items())
    print(f"   blackbox median ms per target (last run): {phases}, "
          f"total {bb_runs[-1]['duration']:.0f}")  # fmt: skip
    sys.stdout.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.blackbox", description=__doc__)
    p.add_argument("--concurrency", type=int, nargs="*", default=[8, 32, 64])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--targets", type=int, default=200)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not pathlib.Path(EXPORTER).exists():
        sys.exit(f"{EXPORTER} is not installed (apt-get install prometheus-blackbox-exporter)")
    figures.header(f"probe vs blackbox_exporter: {args.targets} targets, 30 ms RTT")
    urls = rig.cycle_urls(args.targets)
    lab = rig.build_lab(30.0, 0)
    try:
        pid = start_exporter(lab)
        startup = rig.run_measured(lab.ns("probe_a"), [rig.PROBE, "--version"])
        print(f"   probe start-up (`surblocage-probe --version`): CPU {startup.cpu_seconds:.2f} s, "
              f"wall {startup.wall_seconds:.2f} s: paid once per `check` process")  # fmt: skip
        for c in args.concurrency:
            compare(lab, pid, urls, c, args.runs)
        print(f"   blackbox_exporter peak RSS over the whole run: {peak_rss_mib(pid):.1f} MiB")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
