"""One cycle of a watchlist with four resolver paths against one: wall time and CPU.

usage: python -m benchmarks.resolver_paths [--targets 100] [--runs 3] [--delay-ms 10]
       [--concurrency 8]

Builds the benchmark lab (benchmarks/rig.py: ISP "a", honest ``*.bench.example`` targets; the
lab's public resolvers of tests/lab/public_resolvers.py in its internet ns) and runs, alternately,
`surblocage-probe check --json --no-control` in probe a's namespace with one path (the ISP's
resolver) and with four (the ISP's over UDP, the "Google" over UDP, DoH and DoT). It prints the
median wall time and user+sys CPU of each, and their ratios. Run it under the lab's lock:
`flock /tmp/surblocage-lab.lock .venv/bin/python -m benchmarks.resolver_paths`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence

from benchmarks import rig
from tests.lab import public_resolvers
from tests.lab.topology import Lab


def argv(lab: Lab, urls: list[str], concurrency: int, paths: list[str]) -> list[str]:
    base = rig.probe_argv(lab, urls, concurrency, None)
    at = base.index("--resolver")
    resolvers = [a for p in paths for a in ("--resolver", p)]
    return [*base[:at], *resolvers, *base[at + 2 :]]


def one(lab: Lab, urls: list[str], concurrency: int, paths: list[str]) -> rig.ProcessCost:
    cost = rig.run_measured(lab.ns("probe_a"), argv(lab, urls, concurrency, paths))
    if cost.returncode != 0:
        sys.exit(f"check failed: {cost.stderr[-2000:]}")
    records = [json.loads(line) for line in cost.stdout.splitlines()]
    bad = [r["target"]["url"] for r in records if r["http"] is None or r["http"]["status"] != 200]
    if len(records) != len(urls) or bad:
        sys.exit(f"{len(records)} records for {len(urls)} targets; not 200: {bad[:5]}")
    if len(paths) > 1 and any(len(r["paths"]) != len(paths) for r in records):
        sys.exit("a record without a verdict per path")
    lookups: dict[str, list[float]] = {}
    for r in records:
        for d in r["dns"]:
            lookups.setdefault(d["path"], []).append(d["ms"])
    each = ", ".join(f"{k} {statistics.median(v):.0f} ms" for k, v in lookups.items())
    target = statistics.median(r["duration_ms"] for r in records)
    print(f"  median lookup by path: {each}; median target {target:.0f} ms", file=sys.stderr)
    return cost


def main(args: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.resolver_paths")
    p.add_argument("--targets", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--delay-ms", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=8)
    a = p.parse_args(args)
    urls = rig.cycle_urls(a.targets)
    with rig.build_lab(a.delay_ms, 0) as lab:
        every = public_resolvers.paths(lab.resolver("a"))
        variants = {
            "1 path": [every[0]],
            "4 paths": [every[0], every[1], every[3], every[4]],  # isp, google, doh, dot
        }
        costs: dict[str, list[rig.ProcessCost]] = {k: [] for k in variants}
        for run in range(a.runs):
            for name, paths in variants.items():
                costs[name].append(one(lab, urls, a.concurrency, paths))
                c = costs[name][-1]
                line = f"wall {c.wall_seconds:.2f} s, cpu {c.cpu_seconds:.2f} s"
                print(f"run {run + 1} {name}: {line}", file=sys.stderr)
    wall = {k: statistics.median(c.wall_seconds for c in v) for k, v in costs.items()}
    cpu = {k: statistics.median(c.cpu_seconds for c in v) for k, v in costs.items()}
    print(f"targets {a.targets}, concurrency {a.concurrency}, RTT +{a.delay_ms} ms, n={a.runs}")
    for k in variants:
        print(f"{k}: median wall {wall[k]:.2f} s, median cpu {cpu[k]:.2f} s")
    print(
        f"4 paths / 1 path: wall x{wall['4 paths'] / wall['1 path']:.2f}, "
        f"cpu x{cpu['4 paths'] / cpu['1 path']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
