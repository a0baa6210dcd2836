"""Ingest and the flag judge with records of one resolver path against records of several.

Usage: python -m benchmarks.flag_paths [--db URL] [--records 4000] [--paths 1 5] [--runs 3]
                                        [--serving-gc]

Each run a fresh database (a SQLite file, or the --db PostgreSQL URL emptied first) receives
``--records`` records in batches of 100, from one probe a network (benchmarks/records.py's eight
networks and sixty services, the last hour), a fifth of them blocked through the primary path;
with N paths, each record carries N path verdicts (the primary's, a "google" path refusing a
tenth of the names, the rest reaching them). Timed: ``Store.insert_batch`` (which marks the
pairs and keeps the blocked looks per path in the batch's transaction) and
``Findings.judge_pending`` after every tenth batch, in this process, without HTTP.

By default with CPython's default collector settings, the run's records (every batch of it,
built first) among the objects each full collection goes through; ``--serving-gc`` sets them as
``surblocage-collector serve`` does (``collector.app.tune_gc``: the objects built before the
run frozen, young collections every 10,000 allocations), which is how the judge runs when served.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import pathlib
import random
import statistics
import sys
import tempfile
import time

import sqlalchemy as sa

from benchmarks import figures, records
from collector import app
from collector.judge import Findings, open_store
from collector.store import MeasurementRow, migrate
from collector.store.schema import metadata
from probe.record import PathVerdict, Verdict

BATCH = 100
NAMES = ("google", "cloudflare", "quad9", "google_doh", "cloudflare_doh", "quad9_doh")


def rows(count: int, paths: int, seed: int) -> list[MeasurementRow]:
    """Return ``count`` stored records, each with ``paths`` path verdicts (1: none, as a
    record of one unnamed resolver)."""
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC)
    start, step = now - datetime.timedelta(hours=1), datetime.timedelta(hours=1) / count
    out = []
    for i in range(count):
        network = i % len(records.NETWORKS)
        m = records.make_record(rng, start + step * i, f"probe-{network}", network)
        blocked = rng.random() < 0.2
        v = Verdict("blocked", "dns", "nxdomain") if blocked else Verdict("ok")
        verdicts = []
        if paths > 1:
            verdicts.append(PathVerdict("isp", "udp", "192.168.1.1", v.status, v.method, v.detail))
            for name in NAMES[: paths - 1]:
                refused = name == "google" and rng.random() < 0.1
                verdicts.append(
                    PathVerdict(name, "udp", "8.8.8.8", "blocked", "dns", "refused", "ede_16")
                    if refused
                    else PathVerdict(name, "udp", "8.8.8.8", "ok")
                )
        m = dataclasses.replace(m, verdict=v, paths=verdicts)
        asn, name, _ = records.NETWORKS[network]
        received = start + step * i + datetime.timedelta(seconds=1)
        out.append(
            MeasurementRow.from_record(
                m, probe_id=m.probe.id, asn=asn, network=name, received_at=received,
                probe_verdict=v,
            )
        )  # fmt: skip
    return out


def run(url: str, batch_rows: list[MeasurementRow]) -> tuple[float, float, int, float]:
    """Store and judge ``batch_rows``; return (insert seconds, judge seconds, flags, judge CPU
    seconds of this process: on a shared machine, the figure the others' load moves least)."""
    migrate(url)
    store = open_store(url)
    findings = Findings(store)
    inserting = judging = judging_cpu = 0.0
    now = datetime.datetime.now(datetime.UTC)
    for n, i in enumerate(range(0, len(batch_rows), BATCH)):
        t0 = time.perf_counter()
        store.insert_batch(batch_rows[i : i + BATCH])
        t1 = time.perf_counter()
        if n % 10 == 9 or i + BATCH >= len(batch_rows):
            c0 = time.process_time()
            findings.judge_pending(now)
            judging_cpu += time.process_time() - c0
        judging += time.perf_counter() - t1
        inserting += t1 - t0
    flags = len(findings.query_flags())
    store.close()
    return inserting, judging, flags, judging_cpu


def empty(url: str) -> None:
    """Drop every table of a PostgreSQL database, so that a run starts fresh."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", help="a PostgreSQL URL (emptied at each run); default: SQLite files")
    p.add_argument("--records", type=int, default=4000)
    p.add_argument("--paths", type=int, nargs="+", default=[1, 5])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--serving-gc", action="store_true", help="collect as the collector serves")
    args = p.parse_args(argv)
    figures.header(f"ingest and flag judge, {args.records} records, paths {args.paths}")
    results: dict[int, list[tuple[float, float, int, float]]] = {n: [] for n in args.paths}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for n in args.paths:  # alternated, so that the machine's load falls on both
                url = args.db or f"sqlite:///{pathlib.Path(tmp) / f'{n}-{r}.db'}"
                if args.db:
                    empty(url)
                built = rows(args.records, n, seed=r)
                if args.serving_gc:
                    app.tune_gc()  # a served collector does not hold the run's records: frozen
                results[n].append(run(url, built))
                if args.serving_gc:
                    gc.unfreeze()
                ins, jud, flags, cpu = results[n][-1]
                print(f"run {r + 1}, {n} paths: insert {ins:.2f} s, judge {jud:.2f} s "
                      f"(CPU {cpu:.2f} s), {flags} flags", file=sys.stderr)  # fmt: skip
    base = args.paths[0]
    gc_settings = "serving" if args.serving_gc else "default"
    print(f"database: {(args.db or 'sqlite').split(':', 1)[0]}; gc {gc_settings}; {figures.load()}")
    print(
        "| paths | insert s (median) | judge s (median) | judge CPU s (median) "
        "| records/s stored+judged | flags |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for n, found in results.items():
        ins = statistics.median(x[0] for x in found)
        jud = statistics.median(x[1] for x in found)
        cpu = statistics.median(x[3] for x in found)
        rate = args.records / (ins + jud)
        print(f"| {n} | {ins:.2f} | {jud:.2f} | {cpu:.2f} | {rate:.0f} | {found[-1][2]} |")
    for n in args.paths[1:]:
        ratio = [
            (a[0] + a[1]) / (b[0] + b[1]) for a, b in zip(results[n], results[base], strict=True)
        ]
        print(f"ratio {n}/{base} paths (insert+judge): x{statistics.median(ratio):.2f}")
        judge = [a[3] / b[3] for a, b in zip(results[n], results[base], strict=True)]
        print(f"ratio {n}/{base} paths (judge CPU): x{statistics.median(judge):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
