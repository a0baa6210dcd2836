"""Collector ingest over HTTP: records per second, batches of 100, several submitters at once.

usage: python -m benchmarks.ingest [--backends sqlite postgresql] [--submitters 4]
       [--records 20000] [--runs 3] [--profiles page short] [--processes 1 2]

Each backend gets a fresh database, migrated by `surblocage-collector migrate`, and one
`surblocage-collector serve` process (benchmarks/collectord.py), or with --processes several
sharing the database, submitter i posting to process i mod K. Each submitter is a probe
registered through POST /api/v1/probes, posting its share of pre-serialised batches (the JSON is
built before the clock starts) to POST /api/v1/measurements, one at a time, as the probe's
uploader does. A run counts only batches answered 200 with every record inserted. Runs append to
the same database. The client runs on the same machine: its CPU is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import pathlib
import random
import resource
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from typing import Any

import aiohttp
import sqlalchemy as sa

from benchmarks import bulkload, collectord, figures, profiling, records

BATCH = 100


def batches(profile: str, count: int, seed: int, submitters: int) -> list[list[bytes]]:
    """Return, per submitter, its batches as JSON bodies of BATCH records each.

    Submitter i is a probe on network i mod 8 (records.NETWORKS), as a real probe is on one
    line: its batches hold its network's records, of every service, over the last hour.
    """
    rng = random.Random(seed)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    per_submitter = count // submitters
    step = datetime.timedelta(hours=1) / max(per_submitter, 1)
    per: list[list[bytes]] = []
    for i in range(submitters):
        network = i % len(records.NETWORKS)
        bodies = []
        for b in range(per_submitter // BATCH):
            chunk = []
            for j in range(BATCH):
                m = records.make_record(rng, start + step * (b * BATCH + j), "x", network, profile)
                d = m.to_dict()
                d["probe"]["id"] = None  # the collector fills in the authenticated probe
                chunk.append(d)
            bodies.append(json.dumps({"records": chunk}, separators=(",", ":")).encode())
        per.append(bodies)
    return per


class BatchRefused(Exception):
    """A batch not answered 200 with every record inserted: the run is void."""


async def register(session: aiohttp.ClientSession, base: str, n: int) -> list[str]:
    tokens = []
    for i in range(n):
        body = {"asn": 3215, "network": f"bench-{i}"}
        async with session.post(f"{base}/api/v1/probes", json=body) as r:
            tokens.append((await r.json())["token"])
    return tokens


async def submit(bases: list[str], tokens: list[str], work: list[list[bytes]]) -> dict[str, Any]:
    """Post every batch (submitter i to collector i mod K); return wall time and latencies."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=len(tokens))
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, token: str, bodies: list[bytes]) -> None:
            url = f"{bases[i % len(bases)]}/api/v1/measurements"
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for body in bodies:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    answer = await r.json()
                if r.status != 200 or answer.get("inserted") != BATCH:
                    raise BatchRefused(f"batch answered {r.status}: {answer}")
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        jobs = (one(i, t, b) for i, (t, b) in enumerate(zip(tokens, work, strict=True)))
        await asyncio.gather(*jobs)
        return {"wall": time.perf_counter() - started, "latencies": latencies}


async def tokens_for(base: str, n: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        return await register(session, base, n)


def one_run(cs: list[collectord.Collector], tokens: list[str], work: list[list[bytes]]) -> dict:
    count = sum(len(b) for b in work) * BATCH
    cpu0, client0 = sum(c.cpu_seconds() for c in cs), resource.getrusage(resource.RUSAGE_SELF)
    try:
        done = asyncio.run(submit([c.base for c in cs], tokens, work))
    except BatchRefused as e:
        sys.exit(f"{e}\ncollector log:\n{cs[0].log_tail()}")
    client1 = resource.getrusage(resource.RUSAGE_SELF)
    pending_at_end, judged_after = judge_lag(cs[0].url)
    lat = [x * 1000 for x in done["latencies"]]
    return {
        "pending": pending_at_end,
        "lag": judged_after,
        "rate": count / done["wall"],
        "p50": figures.percentile(lat, 50),
        "p99": figures.percentile(lat, 99),
        "cpu_per_k": (sum(c.cpu_seconds() for c in cs) - cpu0) * 1000 / count,
        "client_cpu": (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime),
        "rss": max(c.rss_mib() for c in cs),
    }


def judge_lag(url: str, timeout_seconds: float = 120) -> tuple[int, float]:
    """Return the marks pending when the last batch was acknowledged, and the seconds until
    none are (the flags then reflect every batch; the collector judges after the ack)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    count = sa.text("SELECT count(*) FROM pending_pairs")
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            first = left = int(conn.execute(count).scalar_one())
            while left and time.perf_counter() - t0 < timeout_seconds:
                time.sleep(0.01)
                conn.rollback()
                left = int(conn.execute(count).scalar_one())
    finally:
        engine.dispose()
    return first, time.perf_counter() - t0


def print_series(label: str, rows: list[dict]) -> None:
    print(f"-- {label}")
    for key, name, unit in (("rate", "records/s", ""), ("p50", "batch p50", " ms"),
                            ("p99", "batch p99", " ms"), ("cpu_per_k", "CPU per 1k", " s"),
                            ("rss", "peak RSS", " MiB"), ("pending", "pending at end", ""),
                            ("lag", "all judged after", " s")):  # fmt: skip
        digits = 2 if key in ("cpu_per_k", "lag") else 0
        print(f"   {name:<12} {figures.summary([r[key] for r in rows], unit, digits)}")
    sys.stdout.flush()


def series(
    cs: list[collectord.Collector], tokens: list[str], profile: str, args: argparse.Namespace,
    label: str, workdir: pathlib.Path,
) -> None:  # fmt: skip
    """Run ``args.runs`` ingests of fresh records of ``profile``; print each, then the summary."""
    rows = []
    for i in range(args.runs):
        seed = zlib.crc32(f"{label} {profile} {i}".encode())  # new ids for every series
        work = batches(profile, args.records, seed=seed, submitters=len(tokens))
        spy = workdir / f"spy-{cs[0].port}-{profile}.txt"
        sampler = profiling.start_py_spy(cs[0].pid, spy) if args.profile and not i else None
        r = one_run(cs, tokens, work)
        if sampler is not None:
            profiling.stop_py_spy(sampler)
            profiling.print_collapsed(spy, focus=FOCUS)
        rows.append(r)
        print(f"   {label} run {i + 1}: {r['rate']:.0f} records/s, batch p50 {r['p50']:.0f} ms "
              f"p99 {r['p99']:.0f} ms, collector CPU {r['cpu_per_k']:.2f} s/1k, client CPU "
              f"{r['client_cpu']:.1f} s, {r['pending']} marks pending at the last ack, all judged "
              f"{r['lag']:.2f} s after, {figures.load()}", flush=True)  # fmt: skip
    size = records.record_bytes(profile) / 1000
    print_series(f"{label}: {profile} records ({size:.1f} KB), {len(tokens)} submitters", rows)


# where an ingest's CPU goes, by step of handlers.post_measurements
FOCUS = (
    "post_measurements", "read_json", "parse_batch", "Measurement.from_dict", "prepare_rows",
    "decide", "MeasurementRow.from_record", "Store.insert_batch", "insert", "note", "mark",
    "Judge.drain", "Findings.judge_pending", "judge", "_blocked", "_looks", "evaluate",
    "_findings_snapshot", "DefaultDialect.do_execute", "DefaultDialect.do_executemany",
    "DefaultDialect.do_commit", "JSONText.process_bind_param",
)  # fmt: skip


# what-if: the index a (network, service) pair's observations would need (flags.py reads
# service + asn + network + started_at; the shipped indexes lead with one of them only)
PAIR_INDEX = "CREATE INDEX ix_bench_pair ON measurements (service, asn, network, started_at, id)"


def add_pair_index(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql(PAIR_INDEX)
    engine.dispose()
    print(f"   what-if: {PAIR_INDEX}", flush=True)


def run_backend(kind: str, args: argparse.Namespace, workdir: pathlib.Path) -> None:
    """For each variant and count of processes sharing the database, ingest into a fresh one."""
    counts = args.processes
    for variant in args.variants:
        for k in counts:
            with collectord.scratch_database(kind, "ingest") as url, contextlib.ExitStack() as st:
                if args.preload:
                    bulkload.load(url, args.preload, args.preload_days, "lean")
                else:
                    collectord.migrate(url)
                if args.pair_index:
                    add_pair_index(url)
                v = None if variant == "shipped" else variant
                cs = [st.enter_context(collectord.Collector(url, workdir, v)) for _ in range(k)]
                tokens = asyncio.run(tokens_for(cs[0].base, args.submitters))
                for profile in args.profiles:
                    label = f"{kind} {variant} x{k}"
                    series(cs, tokens, profile, args, label, workdir)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__)
    p.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    p.add_argument("--submitters", type=int, default=4)
    p.add_argument("--records", type=int, default=10000, help="records a run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profiles", nargs="*", default=["short"],
                   choices=list(records.PROFILES))  # fmt: skip
    p.add_argument("--profile", action="store_true", help="py-spy the first run of each")
    p.add_argument("--variants", nargs="*", default=["shipped"],
                   help="what-ifs of benchmarks/collector_variants.py")  # fmt: skip
    p.add_argument("--preload", type=int, default=0, metavar="N",
                   help="bulk-load N records first (benchmarks/bulkload.py)")  # fmt: skip
    p.add_argument("--preload-days", type=float, default=2.0,
                   help="over this many days before now (flags read the last 2 days)")  # fmt: skip
    p.add_argument("--pair-index", action="store_true", help="what-if: " + PAIR_INDEX)
    p.add_argument("--processes", type=int, nargs="*", default=[1],
                   help="collector processes sharing the database")  # fmt: skip
    args = p.parse_args(argv)
    figures.header(f"collector ingest: batches of {BATCH}, {args.submitters} submitters")
    with tempfile.TemporaryDirectory(prefix="sb-bench-ingest-") as tmp:
        for kind in args.backends:
            run_backend(kind, args, pathlib.Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
