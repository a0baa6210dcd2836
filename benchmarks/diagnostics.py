"""The diagnostics of blocked targets: packets sent and wall time per diagnosed target, and the
cycle's packet budget with 20 blocked targets.

usage: python -m benchmarks.diagnostics [--runs 3] [--blocked 20] [--budget 2000] [--pps 20]

Builds the diagnostics lab (tests/lab/diagnostics_world.py: ISP "a" with two core routers, its
middlebox on core_a1, an on-path injector, a host that resets the probes), starts a collector
as the control, and runs `surblocage-probe check --json` in probe a's namespace:
1. per kind of blocking, one target, ``--runs`` times, with and without diagnostics
   (``--no-diagnostics``): the median wall time of the process, and the packets the record
   says the diagnosis sent;
2. ``--blocked`` SNI-reset targets in one run (distinct URLs, so each is diagnosed: `check`
   keeps no interval), with ``--budget`` and with 300 packets: packets summed over the
   records, diagnosed and skipped ("budget").
Run it under the lab's lock:
`flock /tmp/surblocage-lab.lock .venv/bin/python -m benchmarks.diagnostics`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from tests.lab import diagnostics_world as world
from tests.lab.report import start_collector
from tests.lab.topology import FINGERPRINTS, Lab

# a budget the 20 targets overrun, to show the skip
SMALL_BUDGET = 300
KINDS = {
    "dns injection (public resolver)": ("https://inject.example/", "public"),
    "lying ISP resolver": ("https://dns-lo.example/", "isp"),
    "SNI reset at hop 2": ("https://sni-rst.example/", "isp"),
    "Host reset at hop 2": ("http://host-rst.example/", "isp"),
    "server resets itself": ("https://srv-rst.example/", "isp"),
}


def check(lab: Lab, resolver: str, urls: Sequence[str], *extra: str) -> tuple[float, list[Any]]:
    command = str(pathlib.Path(sys.executable).with_name("surblocage-probe"))
    argv = [
        command, "check", "--json", "--quiet", "--resolver", resolver, "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network, "--fingerprints", str(FINGERPRINTS),
        "--control", lab.control_url, "--timeout", "3", *extra, *urls,
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = lab.exec("probe_a", argv, timeout=900)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"check failed: {done.stderr[-2000:]}")
    return wall, [json.loads(line) for line in done.stdout.splitlines()]


def per_kind(lab: Lab, runs: int) -> None:
    print("| blocking | wall s, no diagnostics | wall s, diagnosed | ratio | packets | "
          "diagnosis ms | findings |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind, (url, which) in KINDS.items():
        resolver = lab.public_resolver if which == "public" else lab.resolver("a")
        off = [check(lab, resolver, [url], "--no-diagnostics")[0] for _ in range(runs)]
        on, packets, ms, found = [], [], [], ""
        for _ in range(runs):
            wall, [r] = check(lab, resolver, [url])
            d = r["diagnostics"] or {}
            on.append(wall)
            packets.append(d.get("packets", 0))
            ms.append(d.get("duration_ms", 0))
            found = findings(d)
        a, b = statistics.median(off), statistics.median(on)
        print(f"| {kind} | {a:.2f} | {b:.2f} | {b / a:.1f} | {statistics.median(packets):.0f} | "
              f"{statistics.median(ms):.0f} | {found} |")  # fmt: skip


def findings(d: dict[str, Any]) -> str:
    parts = []
    if d.get("dns_injection"):
        parts.append(f"dns {d['dns_injection']['result']}")
    if d.get("reset_origin"):
        parts.append(f"reset {d['reset_origin']['result']}")
    if d.get("location"):
        loc = d["location"]
        parts.append(f"{loc['trigger']} hop {loc['hop']}" if loc["hop"] else "not located")
    return ", ".join(parts) or json.dumps(d)


def budget(lab: Lab, blocked: int, packets: int, pps: float) -> None:
    urls = [f"https://sni-rst.example/{i}" for i in range(blocked)]
    os.environ["SURBLOCAGE_PROBE_DIAGNOSTICS_BUDGET"] = str(packets)
    os.environ["SURBLOCAGE_PROBE_DIAGNOSTICS_PPS"] = str(pps)
    wall, records = check(lab, lab.resolver("a"), urls)
    diags = [r["diagnostics"] for r in records]
    sent = sum(d.get("packets", 0) for d in diags if d)
    diagnosed = sum(1 for d in diags if d and "skipped" not in d)
    skipped = sum(1 for d in diags if d and d.get("skipped") == "budget")
    print(f"\n{blocked} blocked targets, budget {packets} packets at {pps}/s: {diagnosed} "
          f"diagnosed, {skipped} skipped (budget), {sent} packets sent "
          f"({'within' if sent <= packets else 'OVER'} the budget), {wall:.1f} s wall")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--blocked", type=int, default=20)
    p.add_argument("--budget", type=int, default=2000)
    p.add_argument("--pps", type=float, default=20.0)
    args = p.parse_args(argv)
    lab = Lab(prefix=f"sbdiagbench{os.getpid()}", isps=world.ISPS,
              techniques=world.TECHNIQUES_HERE).up()  # fmt: skip
    try:
        lab.exec("internet", world.server_reset_rule(lab.isp("a").lan)).check_returncode()
        if start_collector(lab) is None:
            return 1
        print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)\n")
        per_kind(lab, args.runs)
        for packets in dict.fromkeys((args.budget, SMALL_BUDGET)):
            budget(lab, args.blocked, packets, args.pps)
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
