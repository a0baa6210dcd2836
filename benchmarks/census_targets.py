"""GET /api/v1/addresses's computation over a large domain index (the work the cache saves).

Usage: python -m benchmarks.census_targets [--db URL] [--names N] [--runs N]

A migrated database (a fresh SQLite file by default) is filled with ``names`` indexed names
(1 in 1,000 marked intended), each resolved to one or two of ``names / 5`` addresses (so that
some addresses host many names, as CDNs do), and 500 open address flags; then
``targets.compute`` (the selection of 2,000 targets) is timed ``runs`` times.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import tempfile
import time

import sqlalchemy as sa

from benchmarks import figures
from collector.census import targets
from collector.judge import open_store
from collector.store import migrate
from collector.store.schema import address_flags, domain_addresses, domains, network_key

AT = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _address(n: int) -> str:
    return f"{1 + n // 65025 % 200}.{n // 255 % 255}.{n % 255}.7"


def fill(conn: sa.Connection, names: int) -> None:
    """Insert the index: names, their addresses (skewed), and open address flags."""
    pool = max(names // 5, 1)
    step = 50_000
    for start in range(0, names, step):
        rows = [
            {"id": i + 1, "name": f"name{i}.example", "rank": i + 1,
             "intended": i % 1000 == 0, "added_at": AT, "resolved_at": AT}
            for i in range(start, min(start + step, names))
        ]  # fmt: skip
        conn.execute(sa.insert(domains), rows)
        pairs = []
        for r in rows:
            i = r["id"]
            first = (i * i) % pool if i % 3 else i % 50  # a few addresses host a third of names
            pairs.append({"domain_id": i, "ip": _address(first), "first_seen": AT, "last_seen": AT})
            if i % 2:
                pairs.append(
                    {"domain_id": i, "ip": _address((first + 1) % pool), "first_seen": AT,
                     "last_seen": AT}
                )  # fmt: skip
        conn.execute(sa.insert(domain_addresses), pairs)
        print(f"filled {min(start + step, names)} names", file=sys.stderr)
    flags = [
        {"id": f"f{n}", "network_key": network_key(3215, "Orange"), "asn": 3215,
         "network": "Orange", "ip": _address(n * 7 % pool), "method": "tcp_ip", "state": "open",
         "first_seen": AT, "last_seen": AT, "probes": ["p"], "confidence": 0.5,
         "evidence": ["s"], "networks": 1}
        for n in range(500)
    ]  # fmt: skip
    conn.execute(sa.insert(address_flags), flags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--names", type=int, default=1_000_000, help="indexed names (1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="computations timed (3)")
    args = parser.parse_args(argv)
    if args.names < 1 or args.runs < 1:
        parser.error("--names and --runs: at least 1")
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{pathlib.Path(tmp.name) / 'census.db'}"
    migrate(url)
    store = open_store(url)
    store.write(fill, args.names)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        found = store.read(targets.compute, 2000)
        times.append(time.perf_counter() - t0)
        print(f"{len(found)} targets in {times[-1]:.2f} s", file=sys.stderr)
    store.close()
    figures.header(f"GET /api/v1/addresses computed over {args.names} names")
    print(f"database: {url.split(':', 1)[0]}; n={args.runs}")
    print(f"compute s: median {statistics.median(times):.2f}, {figures.summary(times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
