"""How light the probe is: `check --json`, blackbox_exporter and a minimal asyncio reference,
whole processes, in one lab run; prints the comparison table (markdown).

usage: python -m benchmarks.light [--runs 3] [--targets 200] [--concurrency 1 8 32 64]
       [--cpu-targets 1000] [--delay-ms 30] [--no-uvloop] [--quick] [--cpu-only] [--profile]

Part 1, in a lab with ``--delay-ms`` of RTT on the ISP uplink: each concurrency, ``--runs`` times
in turn (probe, exporter, reference, so all three see the same machine load), one cycle of
``--targets`` honest HTTPS targets; the table gives the median wall time over the lower bound
(benchmarks/probe_cycle.py: 4 round trips a target). The probe's and the reference's walls are
whole processes (start included); the exporter is a daemon already up, its wall is the driver's.
Peak RSS: GNU time's for the probe and the reference (at concurrency 32), VmHWM over the whole
run for the exporter. Start to first packet: `check` of one target, from the spawn to the
record's ``started_at`` (the DNS query leaves right after), and that process's whole CPU.

Part 2, in a lab with no added delay: ``--cpu-targets`` targets at concurrency 32, CPU user+sys
per target (ms) of each process (the exporter's from /proc). With uvloop installed (the probe's
extra ``fast``), the probe and the reference also run on it (SURBLOCAGE_PROBE_LOOP=uvloop).

The machine may be shared: CPU time is less sensitive to other load than wall time; the load
averages are printed with every run. ``--quick``: 1 run, 100 targets, concurrency 32 and 64,
300 CPU targets (a few minutes).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import blackbox, figures, probe_cycle, profiling, rig
from tests.lab.topology import Lab

# its own namespaces (another benchmark may be up); 7 characters, as rig's, for the links' names
rig.PREFIX = os.environ.get("SURBLOCAGE_LIGHT_PREFIX", "sblight")
PROBE = "probe"
PROBE_UV = "probe (uvloop)"
EXPORTER = "blackbox_exporter"
MINIMAL = "minimal Python"
MINIMAL_UV = "minimal (uvloop)"
BEFORE = "probe before"


def probe_run(
    lab: Lab, urls: list[str], concurrency: int, loop: str = "", source: str = ""
) -> dict[str, Any]:
    """One `check --json` cycle: wall, CPU, peak RSS; exits unless every record is as expected.
    ``loop``: the probe's ``loop`` key (SURBLOCAGE_PROBE_LOOP), e.g. "uvloop"; "": not set.
    ``source``: another checkout's root (e.g. a `git archive` of an older revision) whose
    ``probe`` package runs instead of this one's (PYTHONPATH)."""
    argv = rig.probe_argv(lab, urls, concurrency, None)
    env = [f"SURBLOCAGE_PROBE_LOOP={loop}"] if loop else []
    env += [f"PYTHONPATH={source}"] if source else []
    if env:
        argv = ["env", *env, *argv]
    cost = rig.run_measured(lab.ns("probe_a"), argv)
    if cost.returncode != 0:
        sys.exit(f"probe exited {cost.returncode}: {cost.stderr[-2000:]}")
    probe_cycle.check_records([json.loads(line) for line in cost.stdout.splitlines()], urls)
    return {"wall": cost.wall_seconds, "cpu": cost.cpu_seconds, "rss": cost.peak_rss_mib}


def minimal_run(
    lab: Lab, urls: list[str], concurrency: int, uvloop: bool = False
) -> dict[str, Any]:
    """One cycle of benchmarks/minimal_probe.py: wall, CPU, peak RSS; exits on a wrong answer."""
    argv = [sys.executable, "-m", "benchmarks.minimal_probe", "--resolver", lab.resolver("a"),
            "--ca-file", lab.ca_file, "--concurrency", str(concurrency),
            *(["--uvloop"] if uvloop else []), *urls]  # fmt: skip
    cost = rig.run_measured(lab.ns("probe_a"), argv)
    if cost.returncode != 0:
        sys.exit(f"minimal probe exited {cost.returncode}: {cost.stderr[-2000:]}")
    found = [json.loads(line) for line in cost.stdout.splitlines()]
    if [f["url"] for f in found] != urls or any(f["status"] != 200 for f in found):
        sys.exit(f"minimal probe: unexpected output {cost.stdout[:600]}")
    return {"wall": cost.wall_seconds, "cpu": cost.cpu_seconds, "rss": cost.peak_rss_mib}


def exporter_run(lab: Lab, pid: int, urls: list[str], concurrency: int) -> dict[str, Any]:
    found = blackbox.exporter_run(lab, pid, urls, concurrency)
    return {"wall": found["wall"], "cpu": found["cpu_per_k"] * len(urls) / 1000}


def start_run(lab: Lab, url: str, source: str = "") -> dict[str, float]:
    """`check` of one target: seconds from the spawn to the record's start (its first DNS
    query leaves right after), and the whole process's CPU."""
    probe_run(lab, [url], 1, source=source)  # warms the page cache: the next one is measured
    argv = rig.probe_argv(lab, [url], 1, None)
    argv = ["env", f"PYTHONPATH={source}", *argv] if source else argv
    spawned = datetime.datetime.now(datetime.UTC)
    cost = rig.run_measured(lab.ns("probe_a"), argv)
    started = probe_cycle.parse_time(json.loads(cost.stdout.splitlines()[0])["started_at"])
    return {"first": (started - spawned).total_seconds(), "cpu": cost.cpu_seconds}


def compile_sources(*roots: str) -> None:
    """Byte-compile the probe's package (and these benchmarks) in each source tree, as an
    installed package is (pip compiles at install): with PYTHONDONTWRITEBYTECODE set, as on
    this machine, every process would compile them again, a cost no volunteer pays."""
    for root in roots:
        for package in ("probe", "benchmarks"):
            path = pathlib.Path(root) / package
            if path.is_dir():
                argv = [sys.executable, "-m", "compileall", "-q", str(path)]
                subprocess.run(argv, check=True)


def have_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def probes(args: argparse.Namespace, uv: bool) -> dict[str, tuple[str, str]]:
    """The probe's columns: name -> (loop, source), the revision compared with first."""
    out = {BEFORE: ("", args.before)} if args.before else {}
    out[PROBE] = ("", "")
    if uv:
        out[PROBE_UV] = ("uvloop", "")
    return out


def wall_part(args: argparse.Namespace, uv: bool) -> dict[str, Any]:
    """Part 1: the walls per concurrency, the peak RSS, the start; in the delayed lab."""
    urls = rig.cycle_urls(args.targets)
    lab = rig.build_lab(args.delay_ms, 0)
    variants = probes(args, uv)
    out: dict[str, Any] = {"ratio": {}, "rss": {}, "start": {k: [] for k in variants}}
    try:
        pid = blackbox.start_exporter(lab)
        out["rtt"] = rig.measured_rtt_ms(lab)
        print(f"   measured RTT (TCP connect, median of 20): {out['rtt']:.1f} ms", flush=True)
        for _ in range(args.runs):
            for name, (_, source) in variants.items():
                out["start"][name].append(start_run(lab, urls[0], source))
        for c in args.concurrency:
            bound = probe_cycle.lower_bound_seconds(args.delay_ms, len(urls), c)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in [*variants, EXPORTER, MINIMAL]}
            for i in range(args.runs):
                for name, (loop, source) in variants.items():
                    runs[name].append(probe_run(lab, urls, c, loop, source))
                runs[EXPORTER].append(exporter_run(lab, pid, urls, c))
                runs[MINIMAL].append(minimal_run(lab, urls, c))
                text = ", ".join(f"{k} {v[-1]['wall']:.2f} s" for k, v in runs.items())
                print(f"   c={c} run {i + 1} (bound {bound:.2f} s): {text} | {figures.load()}",
                      flush=True)  # fmt: skip
            out["ratio"][c] = {
                k: statistics.median(r["wall"] for r in v) / bound for k, v in runs.items()
            }
            if c == (32 if 32 in args.concurrency else args.concurrency[-1]):
                out["rss"] = {
                    k: statistics.median(r["rss"] for r in v)
                    for k, v in runs.items()
                    if k != EXPORTER
                }
        out["rss"][EXPORTER] = blackbox.peak_rss_mib(pid)
    finally:
        lab.down()
    return out


def cpu_part(args: argparse.Namespace, uv: bool) -> dict[str, list[float]]:
    """Part 2: CPU ms per target at concurrency 32, no added delay."""
    urls = [f"https://t{i:04d}.bench.example/" for i in range(args.cpu_targets)]
    lab = rig.build_lab(0.0, 0)
    variants = probes(args, uv)
    per: dict[str, list[float]] = {k: [] for k in [*variants, EXPORTER, MINIMAL]}
    if uv:
        per[MINIMAL_UV] = []
    ms = 1000 / len(urls)
    try:
        pid = blackbox.start_exporter(lab)
        for i in range(args.runs):
            for name, (loop, source) in variants.items():
                per[name].append(probe_run(lab, urls, 32, loop, source)["cpu"] * ms)
            per[EXPORTER].append(exporter_run(lab, pid, urls, 32)["cpu"] * ms)
            per[MINIMAL].append(minimal_run(lab, urls, 32)["cpu"] * ms)
            if uv:
                per[MINIMAL_UV].append(minimal_run(lab, urls, 32, True)["cpu"] * ms)
            text = ", ".join(f"{k} {v[-1]:.2f}" for k, v in per.items())
            print(f"   CPU run {i + 1}, ms per target: {text} | {figures.load()}", flush=True)
        if args.profile:
            profiling.profile_probe(lab, urls, 32)
    finally:
        lab.down()
    return per


def table(args: argparse.Namespace, walls: dict[str, Any], cpu: dict[str, list[float]]) -> str:
    """The issue's table, in markdown: one column a program, medians of the runs."""
    cols = [c for c in (BEFORE, PROBE, PROBE_UV, EXPORTER, MINIMAL, MINIMAL_UV) if c in cpu]
    names = {PROBE: "surblocage `check --json`", PROBE_UV: "surblocage, uvloop",
             BEFORE: f"surblocage before ({args.before})"}  # fmt: skip
    rows = [["", *(names.get(c, c) for c in cols)], ["---"] * (len(cols) + 1)]
    for c, ratios in walls["ratio"].items():
        label = f"wall vs the RTT bound, concurrency {c}"
        rows.append([label, *(f"{ratios[k]:.2f}x" if k in ratios else "" for k in cols)])
    label = f"CPU per target, {args.cpu_targets} targets, no delay, concurrency 32"
    rows.append([label, *(f"{statistics.median(cpu[k]):.2f} ms" if k in cpu else "" for k in cols)])
    rss_c = 32 if 32 in args.concurrency else args.concurrency[-1]
    label = f"peak RSS, {args.targets} targets, concurrency {rss_c}"
    rss = walls["rss"]
    rows.append([label, *(f"{rss[k]:.0f} MiB" if k in rss else "" for k in cols)])
    start = walls["start"]
    rows.append(["start to first packet (one target, wall / whole-process CPU)", *(
        f"{statistics.median(s['first'] for s in start[k]):.2f} s / "
        f"{statistics.median(s['cpu'] for s in start[k]):.2f} s" if k in start else ""
        for k in cols
    )])  # fmt: skip
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.light", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--cpu-targets", type=int, default=1000)
    p.add_argument("--delay-ms", type=float, default=30.0)
    p.add_argument("--no-uvloop", action="store_true", help="skip the uvloop runs")
    p.add_argument("--profile", action="store_true", help="and one CPU cycle under cProfile")
    p.add_argument("--cpu-only", action="store_true", help="part 2 only (CPU per target)")
    p.add_argument(
        "--before",
        metavar="DIR",
        default="",
        help="also run the probe of this source tree (a `git archive` of the revision to compare "
        "with), alternating with this one's, in part 2 and for the start",
    )
    p.add_argument("--quick", action="store_true", help="1 run, 100 targets, c=32 and 64")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.targets, args.concurrency, args.cpu_targets = 1, 100, [32, 64], 300
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not pathlib.Path(blackbox.EXPORTER).exists():
        sys.exit(
            f"{blackbox.EXPORTER} is not installed (apt-get install prometheus-blackbox-exporter)"
        )
    uv = have_uvloop() and not args.no_uvloop
    title = f"a light probe: {args.targets} targets at {args.delay_ms:g} ms RTT, "
    title += f"{args.cpu_targets} targets for CPU; uvloop {'on' if uv else 'off'}"
    figures.header(title)
    started = time.perf_counter()
    compile_sources(str(rig.ROOT), *([args.before] if args.before else []))
    if args.cpu_only:
        cpu = cpu_part(args, uv)
        text = ", ".join(f"{k} {figures.summary(v, ' ms')}" for k, v in cpu.items())
        print(f"-- CPU per target: {text}")
        return 0
    walls = wall_part(args, uv)
    cpu = cpu_part(args, uv)
    print(f"-- medians of {args.runs} run(s), {time.perf_counter() - started:.0f} s in all, "
          f"{figures.load()}")  # fmt: skip
    print(table(args, walls, cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
