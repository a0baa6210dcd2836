"""Census read latency through the real HTTP app, on SQLite and PostgreSQL, at census scale.

usage: python -m benchmarks.census_queries [--backend sqlite|postgresql|both]
       [--domains 1000000] [--addresses 50000] [--flags 1000] [--requests 200]

Fills a scratch database directly (as benchmarks/bulkload.py does for records): ``domains``
names, each current on one of ``addresses`` addresses (about 20 a address) and one in ten also
on an older address it left (history rows); ``flags`` address flags over 3 networks on random
addresses, one in ten closed during the last week; 20 watched services on blocked addresses.
Then `surblocage-collector serve` answers, one request at a time over one keep-alive connection:
/api/v1/census, /api/v1/census/addresses (each network in turn), /api/v1/census/history (7 days
of hours) and /api/v1/census/addresses/{ip} (a page of 100 domains). Prints p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import pathlib
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg

from benchmarks import collectord, figures
from benchmarks.queries import rfc3339, timed_get

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
RESOLVED = NOW - datetime.timedelta(hours=6)
NETWORKS = ((3215, "Orange"), (12322, "Free"), (15557, "SFR"))
CHUNK = 50_000
TABLES = {
    "domains": ("id", "name", "rank", "intended", "added_at", "resolved_at"),
    "domain_addresses": ("domain_id", "ip", "first_seen", "last_seen"),
    "address_flags": (
        "id", "network_key", "asn", "network", "ip", "method", "state", "first_seen",
        "last_seen", "closed_at", "probes", "confidence", "evidence", "networks",
    ),
    "service_addresses": ("service", "ip", "first_seen", "last_seen"),
}  # fmt: skip


def address(a: int) -> str:
    return f"100.{64 + a // 65536}.{(a // 256) % 256}.{a % 256}"


def domain_rows(n: int, addresses: int) -> Iterator[tuple[Any, ...]]:
    added = NOW - datetime.timedelta(days=60)
    for i in range(1, n + 1):
        yield (i, f"d{i}.example", i, i % 500 == 0, added, RESOLVED)


def pair_rows(n: int, addresses: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    first = NOW - datetime.timedelta(days=30)
    for i in range(1, n + 1):
        yield (i, address(i % addresses), first, RESOLVED)
        if i % 10 == 0:  # an older address the name left three days ago
            left = RESOLVED - datetime.timedelta(days=3)
            yield (i, address((i * 7 + 1) % addresses), first, left)


def flag_rows(flags: int, addresses: int, rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for k, a in enumerate(rng.sample(range(addresses), flags)):
        asn, name = NETWORKS[k % len(NETWORKS)]
        first = NOW - datetime.timedelta(hours=rng.randrange(1, 24 * 14))
        closed = k % 10 == 0 and first < NOW - datetime.timedelta(days=1)
        closed_at = first + datetime.timedelta(hours=12) if closed else None
        last = closed_at or NOW
        key = f'[{asn},"{name}"]'
        rows.append(
            (
                str(uuid.uuid4()), key, asn, name, address(a), "tcp_ip",
                "closed" if closed else "open", first, last, closed_at,
                '["p-1","p-2"]', 1.0, f'["{uuid.uuid4()}"]', 2,
            )
        )  # fmt: skip
    return rows


def service_rows(flags: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(f"service{i}", f[4], RESOLVED, RESOLVED) for i, f in enumerate(flags[:20])]


def fill(url: str, n: int, addresses: int, flags: int) -> None:
    rng = random.Random(1)
    flagged = flag_rows(flags, addresses, rng)
    tables = {
        "domains": domain_rows(n, addresses),
        "domain_addresses": pair_rows(n, addresses, rng),
        "address_flags": iter(flagged),
        "service_addresses": iter(service_rows(flagged)),
    }
    if url.startswith("sqlite:///"):
        _fill_sqlite(url.removeprefix("sqlite:///"), tables)
    else:
        _fill_pg(url, tables)


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


def _fill_sqlite(path: str, tables: dict[str, Iterator[tuple[Any, ...]]]) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    for table, rows in tables.items():
        columns = TABLES[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        while chunk := [tuple(map(_sqlite_value, r)) for r in itertools.islice(rows, CHUNK)]:
            with db:
                db.executemany(sql, chunk)
    db.execute("ANALYZE")
    db.close()


def _fill_pg(url: str, tables: dict[str, Iterator[tuple[Any, ...]]]) -> None:
    with psycopg.connect(url) as db:
        for table, rows in tables.items():
            with (
                db.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(TABLES[table])}) FROM STDIN") as copy,
            ):
                for r in rows:
                    copy.write_row(r)
        db.commit()
        db.autocommit = True
        db.execute("VACUUM ANALYZE")


async def measure(base: str, requests: int, ips: list[str]) -> dict[str, list[float]]:
    week = rfc3339(NOW - datetime.timedelta(days=7))
    asks = {
        "/api/v1/census": lambda i: ("/api/v1/census", {}),
        "/api/v1/census/addresses (one network)": lambda i: (
            "/api/v1/census/addresses", {"network": NETWORKS[i % 3][1], "state": "open"}),
        "/api/v1/census/history (7 days, hour)": lambda i: (
            "/api/v1/census/history", {"since": week, "step": "hour"}),
        "/api/v1/census/addresses/{ip} (100 domains)": lambda i: (
            f"/api/v1/census/addresses/{ips[i % len(ips)]}", {"limit": "100"}),
    }  # fmt: skip
    out: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for name, ask in asks.items():
            times = []
            for i in range(requests):
                path, params = ask(i)
                ms, status, body = await timed_get(session, base + path, params)
                if status != 200:
                    sys.exit(f"{name}: {status} {body[:200]!r}")
                times.append(ms)
            out[name] = times
    return out


def run(backend: str, args: argparse.Namespace) -> None:
    with collectord.scratch_database(backend, "census") as url:
        collectord.migrate(url)
        t0 = time.perf_counter()
        fill(url, args.domains, args.addresses, args.flags)
        print(f"{backend}: filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        ips = [f[4] for f in flag_rows(args.flags, args.addresses, random.Random(1))]
        with (
            tempfile.TemporaryDirectory() as work,
            collectord.Collector(url, pathlib.Path(work)) as c,
        ):
            results = asyncio.run(measure(c.base, args.requests, ips))
        print(f"-- {backend}: {figures.load()}")
        for name, times in results.items():
            p50, p99 = figures.percentile(times, 50), figures.percentile(times, 99)
            print(f"   {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(times)})")


def calibration_seconds() -> float:
    """Seconds of a 5-million-iteration Python loop (about 0.3 s on an idle core of this class):
    on a shared machine, how much slower than idle the figures are."""
    t0, total = time.perf_counter(), 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--domains", type=int, default=1_000_000)
    p.add_argument("--addresses", type=int, default=50_000)
    p.add_argument("--flags", type=int, default=1000)
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args()
    figures.header(
        f"census queries: {args.domains} domains on {args.addresses} addresses, "
        f"{args.flags} address flags over {len(NETWORKS)} networks"
    )
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args)
        print(f"   calibration: a 5M-iteration loop took {calibration_seconds():.2f} s")


if __name__ == "__main__":
    main()
