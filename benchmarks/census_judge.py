"""The address judge's DB work for one probe's whole sweep (2,000 addresses, 2 sweeps of 1,000).

Usage: python -m benchmarks.census_judge [--db URL] [--rounds N] [--blocked FRACTION]

A migrated database (a fresh SQLite file by default) receives, round after round, one probe's
sweep of ``ADDRESSES`` addresses (a fraction blocked, the rest reached) as two stored sweeps of
1,000 entries; the time measured is ``judgement.judge_chunk`` in one write transaction (no
vantage: the collector's look is network time, not DB work). Each round is a new probe of a
network already swept by the earlier ones, so the looks, blocked looks and flags grow as in
service: the last rounds judge against ``rounds - 1`` probes' looks at every address.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

from benchmarks import figures
from collector.census import judgement, sweeps
from collector.judge import open_store
from collector.store import migrate

ADDRESSES = 2000


def _sweep_rows(
    probe: str, now: datetime.datetime, blocked: float, started: datetime.datetime
) -> list[sweeps.SweepRow]:
    cut = int(ADDRESSES * blocked)
    entries = []
    for i in range(ADDRESSES):
        ip = f"8.{8 + i // 65000}.{(i // 250) % 250}.{i % 250 + 1}"
        look = {"tcp": "connection_reset"} if i < cut else {"tcp": None, "tls": None}
        entries.append({"ip": ip, "port": 443, "sni": "www.example.org", **look, "ms": 10.0})
    out = []
    for half in (entries[:1000], entries[1000:]):
        sid = str(uuid.uuid4())
        doc = {
            "schema": 1, "id": sid, "probe": {"id": probe}, "started_at": started.isoformat(),
            "duration_ms": 1.0, "entries": half,
        }  # fmt: skip
        out.append(sweeps.SweepRow(sid, probe, 3215, "Orange", started, now, len(half), doc))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--rounds", type=int, default=7, help="probes' sweeps judged (7)")
    parser.add_argument("--blocked", type=float, default=0.05, help="blocked share (0.05)")
    args = parser.parse_args(argv)
    if not 0 <= args.blocked <= 1 or args.rounds < 1:
        parser.error("--blocked: between 0 and 1; --rounds: at least 1")
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{pathlib.Path(tmp.name) / 'census.db'}"
    migrate(url)
    store = open_store(url)
    now = datetime.datetime.now(datetime.UTC)
    times = []
    for n in range(args.rounds):
        started = now - datetime.timedelta(minutes=30 - n)
        rows = _sweep_rows(f"bench-probe-{n}", now, args.blocked, started)
        store.write(sweeps.store, rows)
        t0 = time.perf_counter()
        chunk = store.write(judgement.judge_chunk, now, now)
        times.append((time.perf_counter() - t0) * 1000)
        print(
            f"round {n + 1}: {chunk.taken} sweeps, {chunk.toggled} flags opened or closed, "
            f"{times[-1]:.0f} ms", file=sys.stderr,
        )  # fmt: skip
    store.close()
    figures.header("address judge: one probe's sweep of 2,000 addresses")
    print(f"database: {url.split(':', 1)[0]}; blocked share {args.blocked}; n={args.rounds}")
    print(f"judge_chunk ms: median {statistics.median(times):.0f}, {figures.summary(times)}")
    print(figures.machine(), figures.load(), sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
