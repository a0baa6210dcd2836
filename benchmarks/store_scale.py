"""The collector at scale: bulk-load N records, then query latency, flags, memory and export rate.

usage: python -m benchmarks.store_scale --backend sqlite|postgresql --count 1000000
       [--requests 200] [--keep] [--db URL]   (--db: an already loaded database, no load)

One command per backend and size: a scratch database (benchmarks/collectord.py) is filled by
benchmarks/bulkload.py, a `surblocage-collector serve` process answers the query benchmarks
(benchmarks/queries.py) and the streamed export, the export command runs beside it
(benchmarks/exports.py), and the database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import pathlib
import sys
import tempfile
from collections.abc import Iterator, Sequence

from benchmarks import bulkload, collectord, exports, figures, profiling, queries

EXPORTED = 100_000


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.db:
        yield args.db
        return
    with collectord.scratch_database(args.backend, f"scale{args.count}", keep=args.keep) as url:
        bulkload.load(url, args.count, args.days, args.profile)
        yield url


# where a page of GET /api/v1/measurements spends the collector's CPU
QUERY_FOCUS = (
    "get_measurements", "parse_query", "Store.query_measurements", "select_page", "item",
    "JSONText.process_result_value", "UTCDateTime.process_result_value", "json_response",
    "dumps", "DefaultDialect.do_execute", "CursorFetchStrategy.fetchall", "access_log",
)  # fmt: skip


def profile_queries(
    c: collectord.Collector, requests: int, now: datetime.datetime, workdir: pathlib.Path
) -> None:
    """Sample the collector (py-spy) while it answers the "by service" query ``requests`` times."""
    spy = workdir / "queries.txt"
    sampler = profiling.start_py_spy(c.pid, spy)
    params = queries.research_queries(now)["by service"]
    asyncio.run(queries.run_query(c.base, params, requests))
    profiling.stop_py_spy(sampler)
    print("-- py-spy of the collector answering the query by service", flush=True)
    profiling.print_collapsed(spy, focus=QUERY_FOCUS)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.store_scale", description=__doc__)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--profile", default="lean", help="record profile (benchmarks/records.py)")
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--requests", type=int, default=200, help="requests per query")
    p.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    p.add_argument("--db", help="use this loaded database instead of loading one")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--py-spy", action="store_true", help="sample the collector on one query")
    args = p.parse_args(argv)
    figures.header(f"collector at scale: {args.backend}, {args.count} records")
    with database(args) as url, tempfile.TemporaryDirectory(prefix="sb-bench-scale-") as tmp:
        print(f"   database {url}: {bulkload.size_bytes(url) / 1e9:.2f} GB", flush=True)
        now = datetime.datetime.now(datetime.UTC)
        with collectord.Collector(url, pathlib.Path(tmp)) as c:
            print(f"-- query latency, one client, {args.requests} requests each", flush=True)
            queries.measure(c.base, args.requests, now)
            print(f"   collector RSS after the queries: {c.rss_mib('VmRSS'):.0f} MiB, "
                  f"peak {c.rss_mib():.0f} MiB", flush=True)  # fmt: skip
            if args.py_spy:
                profile_queries(c, args.requests, now, pathlib.Path(tmp))
            if not args.no_export:
                days = args.days * min(1.0, EXPORTED / args.count)  # about EXPORTED records
                print(f"-- export rate, the records of the last {days:g} days", flush=True)
                exports.measure(url, c.base, now, days)
                print(f"   collector peak RSS after the streamed exports: {c.rss_mib():.0f} MiB")
        if args.keep and not args.db:
            print(f"   kept: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
