"""The census sweep, whole probe process: 2,000 addresses at 30 ms RTT, 5 % of them dropped.

usage: sudo .venv/bin/python -m benchmarks.sweep [--runs 3] [--count 2000] [--delay-ms 30]
       [--drop-every 20] [--rate 20]

The lab of benchmarks/rig.py (ISP "a", the NFQUEUE delayer on its uplink) with, in the internet
namespace, 198.18.0.0/21 routed to lo and one TLS listener on 0.0.0.0 answering every address of
it (benchmarks/sweep_server.py, which also serves the list). ISP a's router drops every packet to
one address in ``--drop-every``. Each run is `surblocage-probe check --sweep --json` in probe_a,
timed by GNU time: wall, CPU per address, peak RSS; compared with the floor, ``count / rate``
plus one TCP timeout (the last dropped address's). Prints one line a run, then the medians.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
from collections.abc import Sequence

from benchmarks import rig
from tests.lab.addressing import COLLECTOR
from tests.lab.netns import exec_in
from tests.lab.topology import Lab

LIST_PORT, TLS_PORT = 8099, 4443
RANGE = "198.18.0.0/21"  # 2,046 usable addresses: enough for 2,000
TCP_TIMEOUT_SECONDS = 5.0  # the probe's default timeouts.tcp


def dropped(count: int, every: int) -> list[str]:
    first = ipaddress.ip_address("198.18.0.1")
    return [str(first + i) for i in range(every - 1, count, every)]


def prepare(lab: Lab, count: int, drop_every: int) -> None:
    """Route the range to the internet namespace's lo, start the far end, plant the drops."""
    exec_in(lab.ns("internet"), ["ip", "route", "add", "local", RANGE, "dev", "lo"], check=True)
    argv = [sys.executable, "-m", "benchmarks.sweep_server", COLLECTOR, str(LIST_PORT),
            str(TLS_PORT), str(count)]  # fmt: skip
    lab.spawn("internet", argv, "sweep-server", ready_marker="ready")
    for ip in dropped(count, drop_every) if drop_every else ():
        rule = ["iptables", "-I", "FORWARD", "1", "-d", ip, "-j", "DROP"]
        exec_in(lab.ns("router_a"), rule, check=True)


def one_run(lab: Lab, count: int, rate: float) -> dict[str, float]:
    argv = [
        "env", "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE=true", "SURBLOCAGE_PROBE_CENSUS_RATE="
        f"{rate}", rig.PROBE, "check", "--sweep", "--json", "--quiet", "--collector",
        f"http://{COLLECTOR}:{LIST_PORT}", "--allow-network", RANGE,
        "--state-dir", "/tmp/sb-bench-sweep-state",
    ]  # fmt: skip
    before = rig.wire_bytes(lab)
    cost = rig.run_measured(lab.ns("probe_a"), argv)
    wire = rig.wire_bytes(lab) - before
    if cost.returncode != 0:
        sys.exit(f"probe exited {cost.returncode}: {cost.stderr[-2000:]}")
    entries = [e for line in cost.stdout.splitlines() for e in json.loads(line)["entries"]]
    if len(entries) != count:
        sys.exit(f"{len(entries)} entries for {count} addresses")
    timeouts = sum(e["tcp"] == "generic_timeout_error" for e in entries)
    other = sum(e["tcp"] is not None or e.get("tls") is not None for e in entries) - timeouts
    return {
        "wall": cost.wall_seconds,
        "cpu_ms_per_address": cost.cpu_seconds * 1000 / count,
        "rss_mib": cost.peak_rss_mib,
        "timeouts": timeouts,
        "other_failures": other,
        "documents": len(cost.stdout.splitlines()),
        "wire_bytes_per_address": wire / count,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep", description=__doc__.split("\n")[0]
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--delay-ms", type=float, default=30.0)
    p.add_argument("--drop-every", type=int, default=20, help="drop one address in N (0: none)")
    p.add_argument("--rate", type=float, default=20.0, help="census.rate")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lab = rig.build_lab(args.delay_ms, 0)
    try:
        prepare(lab, args.count, args.drop_every)
        rtt = rig.measured_rtt_ms(lab)
        floor = args.count / args.rate + TCP_TIMEOUT_SECONDS
        print(f"count={args.count} rate={args.rate}/s drop 1/{args.drop_every} "
              f"rtt={rtt:.1f} ms floor={floor:.1f} s", flush=True)  # fmt: skip
        runs = []
        for i in range(args.runs):
            r = one_run(lab, args.count, args.rate)
            runs.append(r)
            print(f"run {i + 1}: " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"median of {len(runs)}: " + " ".join(f"{k}={v:.3f}" for k, v in med.items()))
        print(f"wall / floor = {med['wall'] / floor:.3f}")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
