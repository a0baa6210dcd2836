"""Probe cycle in the lab: 200 targets at 30 ms RTT, per concurrency, against the lower bound.

usage: python -m benchmarks.probe_cycle [--concurrency 8 32 64] [--runs 5] [--blackholed 8 32]
       [--targets 200] [--delay-ms 30] [--profile]

Each run is one `surblocage-probe check --json --no-control` process in the probe namespace of
ISP "a"; it prints the cycle (first target's start to last target's end, from the records), the
process's wall time, user+sys CPU and peak RSS (GNU time), and the bytes its interface carried
(/proc/net/dev), per 1,000 targets. The lower bound is ROUND_TRIPS x RTT x targets / concurrency.
Also: when the last GET ended (the cycle without the last targets' passive DNS listen), and the
round trip a separate process measures meanwhile (benchmarks/rtt_probe.py): what the network
itself allowed while the probe loaded the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import figures, profiling, rig
from tests.lab.topology import Lab

# through the ISP uplink, per target, at best: DNS A and AAAA sent together = 1 (the ISP
# resolver forwards both at once), TCP handshake = 1, TLS 1.3 handshake = 1 (one flight each
# way before the client may send data), HTTP GET and its response = 1
ROUND_TRIPS = 4


def lower_bound_seconds(rtt_ms: float, targets: int, concurrency: int) -> float:
    return ROUND_TRIPS * rtt_ms / 1000 * targets / concurrency


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def cycle_seconds(records: Sequence[dict[str, Any]]) -> float:
    """Return the span from the first target's start to the last target's end."""
    starts = [parse_time(r["started_at"]) for r in records]
    ends = [
        s + datetime.timedelta(milliseconds=r["duration_ms"])
        for s, r in zip(starts, records, strict=True)
    ]
    return (max(ends) - min(starts)).total_seconds()


def check_records(records: list[dict[str, Any]], urls: list[str]) -> None:
    """Exit unless every honest target got its 200 and every dark one timed out at TCP."""
    if [r["target"]["url"] for r in records] != urls:
        sys.exit(f"expected {len(urls)} records in input order, got {len(records)}")
    for r in records:
        dark = rig.DARK_SUFFIX in r["target"]["url"]
        http = r["http"] or {}
        ok = (
            r["tcp"] and r["tcp"][0]["failure"] == "generic_timeout_error"
            if dark
            else http.get("status") == 200
        )
        if not ok:
            sys.exit(f"unexpected record for {r['target']['url']}: {json.dumps(r)[:600]}")


def breakdown(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Return the median ms of each round of the honest targets, and the target's tail.

    Since the connection step (revision d15c4fa) one connection carries TCP, TLS and the GET,
    and their ``ms`` count from the connect: TLS's includes TCP's, HTTP's includes TLS's. So
    here: dns, connect, handshake (tls - tcp), get (http - tls), and "listen" = the target's
    duration after its GET (the DNS step's listen for an injected reply, past the slot).
    """
    rows = [r for r in records if r["http"] and r["http"].get("status") == 200]
    parts: dict[str, list[float]] = {
        k: [] for k in ("dns", "connect", "handshake", "get", "target", "listen")
    }
    for r in rows:
        dns, tcp, http = max(d["ms"] for d in r["dns"]), r["tcp"][0]["ms"], r["http"]["ms"]
        tls = r["tls"][0]["ms"] if r["tls"] else tcp
        parts["dns"].append(dns)
        parts["connect"].append(tcp)
        parts["handshake"].append(tls - tcp)
        parts["get"].append(http - tls)
        parts["target"].append(r["duration_ms"])
        parts["listen"].append(r["duration_ms"] - dns - http)
    return {k: statistics.median(v) for k, v in parts.items() if v}


def network_busy_seconds(records: Sequence[dict[str, Any]]) -> float:
    """Return the span from the first target's start to the end of the last GET (the cycle
    without the last targets' passive DNS listen)."""
    starts = [parse_time(r["started_at"]) for r in records]
    ends = [
        s + datetime.timedelta(milliseconds=max(d["ms"] for d in r["dns"]) + r["http"]["ms"])
        for s, r in zip(starts, records, strict=True)
        if r["http"] and r["dns"]
    ]
    return (max(ends) - min(starts)).total_seconds()


PINNED = False  # --pin: the probe on CPU 1, the lab's servers on CPU 0


def one_run(lab: Lab, urls: list[str], concurrency: int, variant: str | None) -> dict[str, Any]:
    """Run one cycle; return its figures (seconds, CPU, RSS, bytes per 1,000 targets)."""
    if variant is None:
        argv = rig.probe_argv(lab, urls, concurrency, None)
    else:
        argv = rig.variant_argv(lab, urls, concurrency, variant)
    if PINNED:
        rig.pin_lab(lab, "0")
        argv = ["taskset", "-c", "1", *argv]
    before_bytes, before_cpu = rig.wire_bytes(lab), rig.lab_cpu(lab)
    with rig.rtt_during(lab) as rtts:
        cost = rig.run_measured(lab.ns("probe_a"), argv)
    after_bytes, after_cpu = rig.wire_bytes(lab), rig.lab_cpu(lab)
    if cost.returncode != 0:
        sys.exit(f"probe exited {cost.returncode}: {cost.stderr[-2000:]}")
    records = [json.loads(line) for line in cost.stdout.splitlines()]
    check_records(records, urls)
    per_k = 1000 / len(urls)
    return {
        "cycle": cycle_seconds(records),
        "busy": network_busy_seconds(records),
        "rtt": statistics.median(rtts) if rtts else float("nan"),
        "wall": cost.wall_seconds,
        "cpu_per_k": cost.cpu_seconds * per_k,
        "rss": cost.peak_rss_mib,
        "mb_per_k": (after_bytes - before_bytes) * per_k / 1e6,
        "lab_cpu": sum(after_cpu.values()) - sum(before_cpu.values()),
        "steps": breakdown(records),
    }


def series(
    lab: Lab, urls: list[str], concurrency: int, runs: int, label: str, variant: str | None = None
) -> list[dict]:
    """Run ``runs`` cycles, printing each."""
    done = []
    for i in range(runs):
        r = one_run(lab, urls, concurrency, variant)
        done.append(r)
        print(
            f"   {label} c={concurrency} run {i + 1}: cycle {r['cycle']:.2f} s, process "
            f"{r['wall']:.2f} s, CPU {r['cpu_per_k']:.2f} s/1k, RSS {r['rss']:.1f} MiB, "
            f"{r['mb_per_k']:.2f} MB/1k, lab servers CPU {r['lab_cpu']:.2f} s, last GET done "
            f"{r['busy']:.2f} s, RTT meanwhile {r['rtt']:.1f} ms, {figures.load()}",
            flush=True,
        )
    return done


def print_summary(label: str, c: int, runs: list[dict], bound: float, delay_ms: float) -> None:
    cycles = [r["cycle"] for r in runs]
    print(f"-- {label}, concurrency {c}: lower bound {bound:.2f} s")
    print(f"   cycle          {figures.summary(cycles, ' s')}  = "
          f"{statistics.median(cycles) / bound:.1f}x the lower bound")  # fmt: skip
    busy = [r["busy"] for r in runs]
    ratio = statistics.median(busy) / bound
    print(f"   last GET done  {figures.summary(busy, ' s')}  = {ratio:.1f}x the lower bound "
          "(the rest of the cycle: the last DNS listens)")  # fmt: skip
    rtt = statistics.median(r["rtt"] for r in runs)
    print(f"   RTT meanwhile  {figures.summary([r['rtt'] for r in runs], ' ms', 1)}: the bound at "
          f"that RTT is {bound * rtt / delay_ms:.2f} s")  # fmt: skip
    print(f"   process wall   {figures.summary([r['wall'] for r in runs], ' s')}")
    print(f"   CPU user+sys   {figures.summary([r['cpu_per_k'] for r in runs], ' s')} per 1k")
    print(f"   peak RSS       {figures.summary([r['rss'] for r in runs], ' MiB', 1)}")
    print(f"   on the wire    {figures.summary([r['mb_per_k'] for r in runs], ' MB')} per 1k")
    steps = runs[-1]["steps"]
    if steps:
        text = ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
        print(f"   median ms per honest target (last run): {text}")
    sys.stdout.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.probe_cycle", description=__doc__)
    p.add_argument("--concurrency", type=int, nargs="*", default=[8, 32, 64])
    p.add_argument("--runs", type=int, default=5, help="cycles per concurrency")
    p.add_argument("--blackholed", type=int, nargs="*", default=[8, 32], metavar="C",
                   help="concurrencies for the cycle with a quarter blackholed")  # fmt: skip
    p.add_argument("--blackholed-runs", type=int, default=3)
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=30.0, help="RTT added on the ISP uplink")
    p.add_argument("--profile", action="store_true", help="also one cProfile'd run at c=32")
    p.add_argument(
        "--pin",
        action="store_true",
        help="what-if: the lab's servers on CPU 0 and the probe on CPU 1 (taskset), so that the "
        "simulated network does not take the probe's CPU",
    )
    p.add_argument(
        "--variants",
        nargs="*",
        default=[],
        metavar="NAME",
        help="what-if step maps of benchmarks/variants.py, at --variant-concurrency",
    )
    p.add_argument("--variant-concurrency", type=int, nargs="*", default=[32])
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global PINNED
    PINNED = args.pin
    pinned = ", pinned: lab on CPU 0, probe on CPU 1" if args.pin else ""
    figures.header(f"probe cycle: {args.targets} targets, {args.delay_ms:g} ms RTT{pinned}")
    honest = rig.cycle_urls(args.targets)
    results: dict[int, list[dict]] = {}
    if args.concurrency:
        lab = rig.build_lab(args.delay_ms, 0)
        try:
            print(f"   measured RTT (TCP connect, median of 20): {rig.measured_rtt_ms(lab):.1f} ms")
            for c in args.concurrency:
                results[c] = series(lab, honest, c, args.runs, "all reachable")
                bound = lower_bound_seconds(args.delay_ms, args.targets, c)
                print_summary("all reachable", c, results[c], bound, args.delay_ms)
            for variant in args.variants:
                for c in args.variant_concurrency:
                    runs = series(lab, honest, c, args.runs, variant, variant)
                    bound = lower_bound_seconds(args.delay_ms, args.targets, c)
                    print_summary(f"variant {variant}", c, runs, bound, args.delay_ms)
            if args.profile:
                profiling.profile_probe(lab, honest, 32)
        finally:
            lab.down()
    if args.blackholed:
        blackholed(args, results)
    return 0


def blackholed(args: argparse.Namespace, honest: dict[int, list[dict]]) -> None:
    """Run the cycles with every 4th target dropped, and say what the timeouts cost."""
    urls = rig.cycle_urls(args.targets, blackhole_every=4)
    lab = rig.build_lab(args.delay_ms, args.targets // 4)
    try:
        for c in args.blackholed:
            runs = series(lab, urls, c, args.blackholed_runs, "quarter blackholed")
            bound = lower_bound_seconds(args.delay_ms, args.targets, c)
            print_summary("quarter blackholed", c, runs, bound, args.delay_ms)
            med = statistics.median(r["cycle"] for r in runs)
            if c in honest:
                base = statistics.median(r["cycle"] for r in honest[c])
                ratio = med / base
                print(f"   the timeouts cost {med - base:.2f} s ({ratio:.1f}x the honest cycle)")
    finally:
        lab.down()


if __name__ == "__main__":
    sys.exit(main())
