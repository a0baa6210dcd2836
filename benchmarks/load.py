"""Many probes at once against the collector: acknowledged records/s, batch latency, exactly-once.

usage: python -m benchmarks.load [--backends sqlite postgresql] [--probes 1000] [--seconds 60]
       [--batch 10] [--interval 5] [--runs 2] [--workers 1] [--profile]

Each run gets a fresh database, migrated by `surblocage-collector migrate`: on SQLite one
`surblocage-collector serve` process, on PostgreSQL two sharing the database (a database created
on $SURBLOCAGE_BENCH_PG for the run and dropped after). The collectors serve with LOAD_CONFIG:
rate and body limits raised far above what the run sends, so the run measures capacity, not
throttling. Then ``--probes`` probes register (POST /api/v1/probes, each its own token and probe
id, probe i posting to collector i mod K) and, for ``--seconds``, each posts batches of
``--batch`` records every ``--interval`` seconds with jitter (benchmarks/loadgen.py), from
``--workers`` generator processes. Printed per run: records/s acknowledged and sent, batch latency
p50/p99/max (every batch, answered or not), answers by status, CPU of the collectors and of the
generator, how late the generator's event loop ran; then the check that every acknowledged record
is stored exactly once and nothing beyond what was sent is stored: PASS or FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from benchmarks import collectord, figures, loadgen, profiling

PROCESSES = {"sqlite": 1, "postgresql": 2}
# the benchmarks' collector config (limits raised out of the way), with bodies and batches as
# large as a run may send
LOAD_CONFIG = collectord.CONFIG.replace(
    "limits:\n", "limits:\n  max_body_bytes: 67108864\n  max_batch_records: 10000\n", 1
)
FOCUS = (
    "post_measurements", "read_body", "prepare_batch", "_authenticated", "Store.insert_batch",
    "Store.probe_by_token_hash", "Judge.drain", "event", "json_response",
)  # fmt: skip


def jobs(probes: list[loadgen.Probe], args: argparse.Namespace) -> list[loadgen.Job]:
    """Split the probes over the generator processes; they all start together, 1 s from now."""
    start = time.time() + 1.0
    per = max(1, args.connections // args.workers)
    return [
        loadgen.Job(probes[w :: args.workers], start, args.seconds, args.interval, args.batch,
                    per, seed=w)
        for w in range(args.workers)
    ]  # fmt: skip


def generate(probes: list[loadgen.Probe], args: argparse.Namespace) -> dict[str, Any]:
    """Drive every probe for the run; return the tallies of every process merged."""
    work = jobs(probes, args)
    if args.workers == 1:
        parts = [loadgen.drive(work[0])]
    else:
        with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
            parts = list(pool.map(loadgen.drive, work))
    merged: dict[str, Any] = {"start": work[0].start, "statuses": collections.Counter()}
    for key in ("sent", "acked", "latencies", "lag"):
        merged[key] = [x for p in parts for x in p[key]]
    for key in ("inserted", "duplicates"):
        merged[key] = sum(p[key] for p in parts)
    for p in parts:
        merged["statuses"].update(p["statuses"])
    merged["last_ack"] = max(p["last_ack"] for p in parts)
    merged["cpu"] = [p["cpu"] for p in parts]
    return merged


def verify(url: str, sent: list[str], acked: list[str]) -> tuple[bool, str]:
    """Count the stored ids: each acknowledged one present once, none beyond those sent."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            stored = collections.Counter(
                conn.execute(sa.text("SELECT id FROM measurements")).scalars()
            )
    finally:
        engine.dispose()
    twice = sum(1 for n in stored.values() if n > 1)
    missing = len(set(acked) - stored.keys())
    extra = len(stored.keys() - set(sent))
    ok = not (twice or missing or extra) and len(set(acked)) == len(acked)
    text = (f"{len(acked)} acknowledged, {len(stored)} stored ids, {missing} acknowledged "
            f"missing, {twice} stored more than once, {extra} never sent")  # fmt: skip
    return ok, text


def figures_of(done: dict[str, Any], seconds: float, cpu: float) -> dict[str, Any]:
    lat = [x * 1000 for x in done["latencies"]] or [0.0]
    wall = max(done["last_ack"] - done["start"], seconds)
    lag = [x * 1000 for x in done["lag"]] or [0.0]
    return {
        "rate": len(done["acked"]) / wall,
        "sent": len(done["sent"]) / wall,
        "p50": figures.percentile(lat, 50),
        "p99": figures.percentile(lat, 99),
        "max": max(lat),
        "errors": {k: v for k, v in done["statuses"].items() if k != "200"},
        "batches": sum(done["statuses"].values()),
        "collector_cpu": cpu / wall,
        "generator_cpu": max(done["cpu"]) / wall,
        "lag_p99": figures.percentile(lag, 99),
    }


def one_run(kind: str, args: argparse.Namespace, workdir: pathlib.Path, i: int) -> dict[str, Any]:
    """A fresh database, its collectors, the probes registered, the load, then the check."""
    with collectord.scratch_database(kind, f"load{i}") as url, contextlib.ExitStack() as st:
        collectord.migrate(url)
        cs = [st.enter_context(collectord.Collector(url, workdir, config=LOAD_CONFIG))
              for _ in range(PROCESSES[kind])]  # fmt: skip
        t0 = time.perf_counter()
        probes = asyncio.run(loadgen.register([c.base for c in cs], args.probes))
        print(f"   registered {len(probes)} probes in {time.perf_counter() - t0:.1f} s", flush=True)
        spy = workdir / f"spy-{kind}-{i}.txt"
        sampler = profiling.start_py_spy(cs[0].pid, spy) if args.profile and not i else None
        cpu0 = sum(c.cpu_seconds() for c in cs)
        done = generate(probes, args)
        cpu = sum(c.cpu_seconds() for c in cs) - cpu0
        if sampler is not None:
            profiling.stop_py_spy(sampler)
            profiling.print_collapsed(spy, focus=FOCUS)
        row = figures_of(done, args.seconds, cpu)
        row["ok"], row["check"] = verify(url, done["sent"], done["acked"])
        row["inserted"], row["duplicates"] = done["inserted"], done["duplicates"]
    return row


def print_run(label: str, i: int, r: dict[str, Any]) -> None:
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
    print(f"   {label} run {i + 1}: {r['rate']:.0f} records/s acknowledged (sent "
          f"{r['sent']:.0f}), batch p50 {r['p50']:.0f} ms p99 {r['p99']:.0f} ms max "
          f"{r['max']:.0f} ms, {r['batches']} batches, errors {errors}; collector CPU "
          f"{r['collector_cpu']:.2f} cores, generator {r['generator_cpu']:.2f} of a core, "
          f"loop lag p99 {r['lag_p99']:.0f} ms; {figures.load()}")  # fmt: skip
    verdict = "PASS" if r["ok"] else "FAIL"
    print(f"   {verdict} exactly once: {r['check']} (inserted {r['inserted']}, "
          f"duplicates {r['duplicates']})", flush=True)  # fmt: skip


def print_series(label: str, rows: list[dict[str, Any]]) -> None:
    print(f"-- {label}")
    for key, name, unit in (("rate", "records/s", ""), ("p50", "batch p50", " ms"),
                            ("p99", "batch p99", " ms"), ("max", "batch max", " ms"),
                            ("collector_cpu", "collector CPU", " cores"),
                            ("generator_cpu", "generator CPU", " core")):  # fmt: skip
        digits = 2 if key.endswith("cpu") else 0
        print(f"   {name:<14} {figures.summary([r[key] for r in rows], unit, digits)}")
    print(f"   exactly once   {sum(r['ok'] for r in rows)} of {len(rows)} runs PASS", flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"],
                   choices=list(PROCESSES), help="SQLite: 1 collector; PostgreSQL: 2")  # fmt: skip
    p.add_argument("--probes", type=int, default=1000, help="simulated probes (default 1000)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of a run (default 60)")
    p.add_argument("--batch", type=int, default=10, help="records a batch (default 10)")
    p.add_argument("--interval", type=float, default=5.0,
                   help="mean seconds between batches, x U(0.5, 1.5) (default 5)")  # fmt: skip
    p.add_argument("--runs", type=int, default=2, help="runs of each backend (default 2)")
    p.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    p.add_argument("--connections", type=int, default=1000,
                   help="client connections, shared by the workers (default 1000)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="py-spy the first collector, run 1")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    offered = args.probes * args.batch / args.interval
    figures.header(f"collector load: {args.probes} probes, batches of {args.batch} every "
                   f"{args.interval:g} s (about {offered:.0f} records/s offered), "
                   f"{args.seconds:g} s, {args.workers} generator process(es)")  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory(prefix="sb-bench-load-") as tmp:
        for kind in args.backends:
            label = f"{kind} x{PROCESSES[kind]}"
            rows = []
            for i in range(args.runs):
                rows.append(one_run(kind, args, pathlib.Path(tmp), i))
                print_run(label, i, rows[-1])
            print_series(f"{label}: {args.probes} probes, {args.seconds:g} s", rows)
            failed = failed or not all(r["ok"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
