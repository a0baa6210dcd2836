"""What researchers' reads cost: export encodings (JSON Lines, CSV, OONI) and paging asc vs desc.

Encodings: ``count`` synthetic records (benchmarks/records.py) as the query API answers them,
encoded chunk by chunk as GET /api/v1/export does; records a second, median of ``runs``.
Paging: the same records stored in a scratch SQLite database, read through in pages of 1,000
with order=asc and order=desc, all of them and one service's; seconds, median of ``runs``.

    .venv/bin/python -m benchmarks.research [--count 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks import records
from collector import export, export_ooni
from collector.store import MeasurementQuery, MeasurementRow, migrate, open_store

START = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
RECEIVED = datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)


def rows(count: int) -> list[MeasurementRow]:
    """The benchmark's records as stored rows."""
    made = records.stream(7, count, START, datetime.timedelta(days=1))
    return [
        MeasurementRow.from_record(
            m, probe_id=m.probe.id or "p", asn=m.probe.asn, network=m.probe.network,
            received_at=RECEIVED, probe_verdict=None,
        )
        for m in made
    ]  # fmt: skip


def median_seconds(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def encodings(items: list[dict[str, Any]], runs: int) -> dict[str, float]:
    """Records a second of each streamed format's encoder."""
    chunks = list(export.chunks(items))
    out = {}
    for fmt in export.STREAMED_FORMATS:
        encoder = export.TextEncoder(fmt, shape=export_ooni.measurement)
        seconds = median_seconds(lambda e=encoder: [e.encode(c) for c in chunks], runs)
        out[fmt] = len(items) / seconds
    return out


def paging(db: Any, runs: int, service: str) -> dict[str, float]:
    """Seconds to read every page, asc and desc, all records and one service's."""
    out = {}
    for name, filters in (("all", {}), (service, {"service": service})):
        for order in ("asc", "desc"):

            def read(f: dict[str, Any] = filters, o: str = order) -> int:
                n, cursor = 0, None
                while True:
                    page = db.query_measurements(
                        MeasurementQuery(**f, order=o, limit=1000, cursor=cursor)
                    )
                    n += len(page.items)
                    if page.next_cursor is None:
                        return n
                    cursor = page.next_cursor

            out[f"{name} {order}"] = median_seconds(read, runs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20_000, help="records (default 20000)")
    p.add_argument("--runs", type=int, default=5, help="runs per figure; medians (default 5)")
    args = p.parse_args()
    stored = rows(args.count)
    with tempfile.TemporaryDirectory(prefix="sb-bench-research-") as tmp:
        url = f"sqlite:///{tmp}/research.db"
        migrate(url)
        db = open_store(url)
        try:
            for start in range(0, len(stored), 1000):
                db.insert_batch(stored[start : start + 1000])
            items = list(db.iter_measurements(MeasurementQuery()))
            rates = encodings(items, args.runs)
            service = stored[0].service
            pages = paging(db, args.runs, service)
        finally:
            db.close()
    print(f"{len(items)} records, medians of {args.runs} runs")
    for fmt, rate in rates.items():
        ratio = rate / rates["jsonl"]
        print(f"encode {fmt:5}  {rate:10.0f} records/s  ({ratio:.2f}x jsonl)")
    for name, seconds in pages.items():
        print(f"page through {name:16} {seconds:7.3f} s")


if __name__ == "__main__":
    main()
