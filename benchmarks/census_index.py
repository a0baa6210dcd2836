"""The census's domain index at Tranco scale: import rate, resolution rate, database size.

usage: python -m benchmarks.census_index --db URL [--names 1000000] [--sample 20000]

1. NAMES synthetic names (``site<i>.<tld>``) are written as a Tranco CSV and imported by
   `surblocage-collector domains import` (a real process): names/s.
2. Every name past the first SAMPLE gets a resolution recorded by the collector's own
   ``index.record`` (in chunks, as a pass records them), a day old: 50,000 addresses, one name in
   five on one of 25 CDN-like addresses (8,000 names each at a million, with an IPv6 one too),
   the others about 16 a host. names/s recorded.
3. The SAMPLE never-resolved names are resolved by the collector's resolution pass
   (``resolve.Pass``, A and AAAA) against an authoritative DNS server on loopback, in a process
   of its own, that answers from the name at once (wire format by hand, no parsing library):
   names/s with --qps high enough not to bind.
4. The database's size (SQLite: the file and its WAL; PostgreSQL: pg_database_size).
The database must be empty (a fresh SQLite path, or an empty PostgreSQL database).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import pathlib
import socket
import struct
import subprocess
import sys
import tempfile
import time

import sqlalchemy as sa

from collector import store as store_mod
from collector.census import index, resolve
from collector.store.schema import domains

ROOT = pathlib.Path(__file__).resolve().parents[1]
TLDS = ("com", "net", "org", "fr", "de", "io", "eu", "info")
HOSTS = 50_000
CDNS = 25
RECORD_CHUNK = 5000


def name_of(i: int) -> str:
    return f"site{i}.{TLDS[i % len(TLDS)]}"


def addresses_of(i: int) -> tuple[list[str], list[str]]:
    """The synthetic A and AAAA answers of name ``i`` (public: named, never dialled)."""
    if i % 5 == 0:
        k = (i // 5) % CDNS
        return [f"23.32.{k}.1"], [f"2a02:26f0:{k:x}::1"]
    j = (i * 7919) % HOSTS
    return [f"81.{j // 250}.{j % 250 + 1}.7"], []


def write_list(path: pathlib.Path, n: int) -> None:
    with open(path, "w") as out:
        out.write("rank,domain\n")
        for start in range(1, n + 1, 100_000):
            stop = min(n + 1, start + 100_000)
            out.write("".join(f"{i},{name_of(i)}\n" for i in range(start, stop)))


def serve_dns(sock: socket.socket) -> None:
    """Answer every A/AAAA question from its name, forever (the benchmark's authoritative)."""
    while True:
        data, peer = sock.recvfrom(512)
        try:
            sock.sendto(answer(data), peer)
        except (IndexError, ValueError, struct.error):
            continue


def answer(query: bytes) -> bytes:
    labels, at = [], 12
    while query[at]:
        length = query[at]
        labels.append(query[at + 1 : at + 1 + length])
        at += 1 + length
    qtype = struct.unpack("!H", query[at + 1 : at + 3])[0]
    question = query[12 : at + 5]
    i = int(labels[0].removeprefix(b"site"))
    v4, v6 = addresses_of(i)
    found = v4 if qtype == 1 else v6 if qtype == 28 else []
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, 4 if qtype == 1 else 16)
        + socket.inet_pton(socket.AF_INET if qtype == 1 else socket.AF_INET6, ip)
        for ip in found
    )
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, len(found), 0, 0)
    return header + question + records


def imported(url: str, path: pathlib.Path) -> float:
    """Import the list by the real command; return the seconds it took."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "collector", "domains", "import", "--db", url, str(path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    print(f"  {done.stdout.splitlines()[0]}", file=sys.stderr)
    return seconds


def record_old(db: store_mod.Store, n: int, sample: int, t: datetime.datetime) -> float:
    """Record a resolution at ``t`` of every name past the first ``sample``; return seconds."""
    ids = dict(db.read(lambda c: c.execute(sa.select(domains.c.name, domains.c.id)).all()))
    started = time.perf_counter()
    for start in range(sample + 1, n + 1, RECORD_CHUNK):
        chunk = {}
        for i in range(start, min(n + 1, start + RECORD_CHUNK)):
            v4, v6 = addresses_of(i)
            chunk[ids[name_of(i)]] = v4 + v6
        db.write(index.record, t, chunk)
    return time.perf_counter() - started


async def resolved(
    db: store_mod.Store, port: int, qps: float, cutoff: datetime.datetime
) -> resolve.Summary:
    """Resolve the names resolved before ``cutoff`` (the sample: never resolved)."""
    return await resolve.Pass(db, resolve.Resolver("127.0.0.1", port), qps, cutoff).run()


def size_bytes(db: store_mod.Store, url: str) -> int:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    return int(db.read(lambda c: c.scalar(sa.text("SELECT pg_database_size(current_database())"))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, metavar="URL", help="an empty database")
    p.add_argument("--names", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=20_000, help="names resolved over DNS")
    p.add_argument("--qps", type=float, default=100_000.0)
    args = p.parse_args()
    store_mod.migrate(args.db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    server = multiprocessing.Process(target=serve_dns, args=(sock,), daemon=True)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            listed = pathlib.Path(tmp) / "top.csv"
            write_list(listed, args.names)
            seconds = imported(args.db, listed)
        print(f"import: {args.names} names in {seconds:.1f} s = {args.names / seconds:.0f} names/s")
        with store_mod.open_store(args.db) as db:
            recorded = args.names - args.sample
            old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
            seconds = record_old(db, args.names, args.sample, old)
            print(f"record: {recorded} names in {seconds:.1f} s = {recorded / seconds:.0f} names/s")
            cpu = time.process_time()
            summary = asyncio.run(resolved(db, sock.getsockname()[1], args.qps, old))
            cpu_ms = (time.process_time() - cpu) / max(summary.names, 1) * 1000
            rate = summary.names / summary.seconds
            print(f"resolve: {summary.line()} = {rate:.0f} names/s")
            print(f"  CPU (this process, recording included): {cpu_ms:.2f} ms a name")
            print(f"size: {size_bytes(db, args.db) / 1e6:.0f} MB")
    finally:
        server.terminate()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
