"""Fill a collector database with N synthetic records fast, for the query and export benchmarks.

usage: python -m benchmarks.bulkload --db URL --count N [--profile lean] [--days 30]

Ingesting 10 million records over HTTP would take hours (benchmarks/ingest.py), so this writes
the measurements table directly, the way a restore would, and leaves the same schema behind:
1. `surblocage-collector migrate` creates the schema (all revisions);
2. the secondary indexes of ``measurements`` are dropped (their definitions kept);
3. rows are generated from a pool of 4,096 records of the benchmark mix (benchmarks/records.py),
   each turned into its stored row by the collector's own code (``verdict.decide``, then
   ``MeasurementRow.from_record``), with a fresh id, time and probe per row; the stored
   document is the row's JSON text with those three substituted;
4. SQLite: one sqlite3 connection, ``journal_mode=OFF`` and ``synchronous=OFF`` while loading,
   executemany in transactions of 50,000 rows; PostgreSQL: COPY ... FROM STDIN (text format),
   the primary key dropped too;
5. the indexes are created again from their saved definitions; SQLite goes back to WAL;
   PostgreSQL gets VACUUM ANALYZE (what autovacuum would do soon after such a load);
6. the flags are brought up to date by the collector's ``Findings.judge_pending`` over one
   record of every (network, service) pair of the last two days, noted and marked as ingest
   notes and marks new records.
Times spread evenly over the last ``days`` days, ending now.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa

from benchmarks import collectord, figures, records
from collector import judge
from collector.store import MeasurementRow, schema
from probe import fingerprints, verdict

POOL = 4096
CHUNK = 50_000
COLUMNS = (
    "id", "probe_id", "received_at", "started_at", "asn", "network", "cc", "service", "domain",
    "category", "status", "method", "detail", "blockpage", "probe_status", "probe_method",
    "probe_detail", "probe_blockpage", "doc",
)  # fmt: skip
ID, AT, PROBE = "@@id@@", "2000-01-01T00:00:00.000Z", "@@probe@@"


Template = tuple[list[Any], list[str]]


def templates(profile: str, seed: int) -> list[Template]:
    """Return POOL (row values, document split at id/probe/time) built by the collector's code."""
    fps = fingerprints.default_fingerprints()
    when = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    rng = random.Random(seed)
    out = []
    for i in range(POOL):
        m = records.make_record(rng, when, PROBE, i % len(records.NETWORKS), profile)
        mine = verdict.decide(m, m.control, fps)
        m = dataclasses.replace(m, id=ID, verdict=mine)
        row = MeasurementRow.from_record(
            m, probe_id=PROBE, asn=m.probe.asn, network=m.probe.network,
            received_at=when, probe_verdict=mine,
        )  # fmt: skip
        values = [getattr(row, c) for c in COLUMNS]
        out.append((values, _split(row.doc_text)))  # the document as the store encodes it
    return out


def _split(doc: str) -> list[str]:
    """Split a document at its id, started_at and probe id (in the order they appear)."""
    parts = []
    for marker in (ID, PROBE, AT):
        head, _, doc = doc.partition(f'"{marker}"')
        parts.append(head)
    return [*parts, doc]


def generate(count: int, days: float, profile: str, seed: int) -> Iterator[tuple[Any, ...]]:
    """Yield (template, id, probe id, started_at, received_at) in time order (naive UTC ISO)."""
    pool = templates(profile, seed)
    rng = random.Random(seed + 1)
    end = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    start = end - datetime.timedelta(days=days)
    step = datetime.timedelta(days=days) / count
    bits = rng.getrandbits
    for i in range(count):
        template = pool[bits(12)]
        rid = "%08x-%04x-4%03x-%04x-%012x" % (  # noqa: UP031 (a hot loop)
            bits(32), bits(16), bits(12), 0x8000 | bits(14), bits(48),
        )  # fmt: skip
        probe = f"probe-{bits(9):04d}"
        at = start + step * i
        started = at.isoformat(timespec="milliseconds")
        received = (at + datetime.timedelta(seconds=30 + bits(8))).isoformat(
            timespec="milliseconds"
        )
        yield template, rid, probe, started, received


def document(parts: list[str], rid: str, probe: str, started: str) -> str:
    return f'{parts[0]}"{rid}"{parts[1]}"{probe}"{parts[2]}"{started}Z"{parts[3]}'


def sqlite_rows(count: int, days: float, profile: str, seed: int) -> Iterator[tuple[Any, ...]]:
    for (values, parts), rid, probe, started, received in generate(count, days, profile, seed):
        row = list(values)
        row[0], row[1], row[18] = rid, probe, document(parts, rid, probe, started)
        row[2] = received.replace("T", " ") + "000"  # SQLAlchemy's SQLite DateTime text
        row[3] = started.replace("T", " ") + "000"
        yield tuple(row)


def load_sqlite(path: str, count: int, days: float, profile: str, seed: int) -> None:
    """Load ``count`` rows into a migrated SQLite file (indexes dropped, then rebuilt)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-4000000")  # 4 GB: the primary key's random ids
    conn.execute("PRAGMA threads=2")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='measurements' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    insert = f"INSERT INTO measurements ({','.join(COLUMNS)}) VALUES ({','.join('?' * 19)})"
    rows = sqlite_rows(count, days, profile, seed)
    t0 = time.perf_counter()
    while True:
        chunk = [r for _, r in zip(range(CHUNK), rows, strict=False)]
        if not chunk:
            break
        conn.execute("BEGIN")
        conn.executemany(insert, chunk)
        conn.execute("COMMIT")
    print(f"   rows written in {time.perf_counter() - t0:.0f} s", flush=True)
    rebuild(lambda sql: conn.execute(sql), [sql for _, sql in indexes])
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def rebuild(execute: Any, statements: list[str]) -> None:
    t0 = time.perf_counter()
    for sql in statements:
        execute(sql)
    print(f"   {len(statements)} indexes built in {time.perf_counter() - t0:.0f} s", flush=True)


def copy_lines(count: int, days: float, profile: str, seed: int) -> Iterator[str]:
    """Yield COPY text-format lines (tab-separated, \\N for null, backslashes doubled)."""
    static: dict[int, tuple[str, list[str]]] = {}
    for (values, parts), rid, probe, started, received in generate(count, days, profile, seed):
        key = id(values)
        if key not in static:  # once per template: the static columns, the escaped document
            middle = "\t".join(_copy_text(v) for v in values[4:18])
            static[key] = (middle, [p.replace("\\", "\\\\") for p in parts])
        middle, escaped = static[key]
        doc = document(escaped, rid, probe, started)
        yield f"{rid}\t{probe}\t{received}+00\t{started}+00\t{middle}\t{doc}\n"


def _copy_text(value: Any) -> str:
    return "\\N" if value is None else str(value)


def load_postgresql(url: str, count: int, days: float, profile: str, seed: int) -> None:
    """Load ``count`` rows into a migrated PostgreSQL database (keys dropped, then rebuilt)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        saved = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'measurements' "
            "AND indexname <> 'pk_measurements'"
        ).fetchall()
        for name, _ in saved:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE measurements DROP CONSTRAINT pk_measurements")
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY measurements ({','.join(COLUMNS)}) FROM STDIN") as cp:
            buffer: list[str] = []
            for line in copy_lines(count, days, profile, seed):
                buffer.append(line)
                if len(buffer) >= 5000:
                    cp.write("".join(buffer))
                    buffer = []
            cp.write("".join(buffer))
        print(f"   rows written in {time.perf_counter() - t0:.0f} s", flush=True)
        pk = "ALTER TABLE measurements ADD CONSTRAINT pk_measurements PRIMARY KEY (id)"
        rebuild(conn.execute, [pk, *(sql for _, sql in saved)])
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE measurements")
        print(f"   VACUUM ANALYZE in {time.perf_counter() - t0:.0f} s", flush=True)


def populate_flags(url: str) -> None:
    """Judge every (network, service) pair of the last two days as the collector does: one record
    of each pair noted (addresses) and its pair marked with its look in one transaction, as
    ``Store.insert_batch`` does for new rows, then ``Findings.judge_pending``; print the flags."""
    store = judge.open_store(url)
    now = datetime.datetime.now(datetime.UTC)
    m = schema.measurements
    recent = m.c.started_at >= now - datetime.timedelta(days=2)
    one_each = (
        sa.select(sa.func.max(m.c.id)).where(recent).group_by(m.c.asn, m.c.network, m.c.service)
    )
    with store.engine.begin() as conn:
        rows = [
            MeasurementRow(**r._mapping)
            for r in conn.execute(sa.select(m).where(m.c.id.in_(one_each)))
        ]
        judge.note(conn, rows)
    t0 = time.perf_counter()
    judged = judge.Findings(store).judge_pending(now)
    took = time.perf_counter() - t0
    store.close()
    print(f"   findings: {judged.pairs} pairs judged by Findings.judge_pending in {took:.0f} s, "
          f"{len(judged.opened)} flags open", flush=True)  # fmt: skip


def size_bytes(url: str) -> int:
    """Return the database's size on disk (SQLite: file and WAL; PostgreSQL: pg_database_size)."""
    if url.startswith("sqlite"):
        path = pathlib.Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def load(url: str, count: int, days: float = 30, profile: str = "lean", seed: int = 7) -> float:
    """Migrate ``url`` and load ``count`` records into it; return the seconds it took."""
    t0 = time.perf_counter()
    collectord.migrate(url)
    if url.startswith("sqlite"):
        load_sqlite(url.removeprefix("sqlite:///"), count, days, profile, seed)
    else:
        load_postgresql(url, count, days, profile, seed)
    populate_flags(url)
    took = time.perf_counter() - t0
    print(
        f"-- loaded {count} {profile} records in {took:.0f} s (rows, indexes and flags: "
        f"{count / took:.0f} records/s), {size_bytes(url) / 1e9:.2f} GB on disk",
        flush=True,
    )
    return took


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bulkload", description=__doc__)
    p.add_argument("--db", required=True, help="sqlite:///PATH or postgresql://... (empty)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--profile", default="lean", choices=list(records.PROFILES))
    p.add_argument("--days", type=float, default=30.0)
    args = p.parse_args(argv)
    figures.header(f"bulk load: {args.count} records into {args.db}")
    load(args.db, args.count, args.days, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
