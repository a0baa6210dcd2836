"""What the flags' diagnostics cost GET /api/v1/flags: reading every flag's evidence diagnostics.

``flags`` flags of 50 evidence records each (the judge's MAX_EVIDENCE), over synthetic records
(benchmarks/records.py, the "page" profile: a block page's first 4,096 characters kept) of which
every other one carries a diagnosis; stored in a scratch SQLite database, or the PostgreSQL
database ``--pg`` names (emptied first: give a scratch one). Times, median of ``runs``:

- ``attach``: collector/flag_diagnostics.attach, what the route does (only the ``diagnostics``
  member leaves the database);
- ``whole documents``: the same records read whole and aggregated in Python (what the flag
  page does for one flag; the alternative for the list).

    .venv/bin/python -m benchmarks.flag_diagnostics [--flags 200] [--runs 5] [--pg URL]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from typing import Any

import sqlalchemy as sa

from benchmarks import records
from benchmarks.research import median_seconds
from collector import flag_diagnostics
from collector.store import MeasurementRow, migrate, open_store
from collector.store.schema import measurements, metadata

START = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
RECEIVED = datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
EVIDENCE = 50
DIAGNOSIS = {
    "dns_injection": {"result": "on_path", "queried": "192.0.2.53", "answers": [
        {"source": "192.0.2.53", "ttl": 58, "ip_id": 4321, "rcode": "NOERROR",
         "addresses": ["127.0.0.1"]}]},
    "reset_origin": None,
    "location": {"result": "found", "trigger": "dns", "hop": 3, "address": "192.0.2.3",
                 "asn": None, "network": None, "evidence": "hop 3 answers the blocked name"},
    "packets": 84, "malformed": 0, "duration_ms": 2300,
}  # fmt: skip


def rows(count: int) -> list[MeasurementRow]:
    made = records.stream(16, count, START, datetime.timedelta(days=1))
    out = []
    for i, m in enumerate(made):
        doc = {**m.to_dict(), "diagnostics": DIAGNOSIS if i % 2 else None}
        out.append(
            MeasurementRow.from_record(
                m, probe_id=m.probe.id or "p", asn=m.probe.asn, network=m.probe.network,
                received_at=RECEIVED, probe_verdict=None, submitted=doc,
            )
        )  # fmt: skip
    return out


def whole(conn: sa.Connection, flags: list[dict[str, Any]]) -> None:
    ids = sorted({i for f in flags for i in f["evidence"]})
    m = measurements.c
    docs = {}
    for start in range(0, len(ids), flag_diagnostics.ID_CHUNK):
        stmt = sa.select(m.id, m.doc).where(m.id.in_(ids[start : start + 500]))
        docs |= {r.id: r.doc for r in conn.execute(stmt)}
    for f in flags:
        f["diagnostics"] = flag_diagnostics.of_records(docs[i] for i in f["evidence"])


def run(url: str, n_flags: int, runs: int) -> dict[str, float]:
    migrate(url)
    store = open_store(url)
    try:
        with store.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        made = rows(n_flags * EVIDENCE)
        for start in range(0, len(made), 1000):
            store.insert_batch(made[start : start + 1000])
        ids = [r.id for r in made]
        flags = [{"evidence": ids[k : k + EVIDENCE]} for k in range(0, len(ids), EVIDENCE)]
        got = store.read(flag_diagnostics.attach, [dict(f) for f in flags])
        assert got[0]["diagnostics"]["probes"] > 0, got[0]
        return {
            "attach": median_seconds(lambda: store.read(flag_diagnostics.attach, flags), runs),
            "whole documents": median_seconds(lambda: store.read(whole, flags), runs),
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", help="a scratch PostgreSQL database URL (emptied)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if args.pg:
            backends["postgresql"] = args.pg
        for name, url in backends.items():
            found = run(url, args.flags, args.runs)
            records_n = args.flags * EVIDENCE
            for what, seconds in found.items():
                print(
                    f"{name:10} {what:16} {args.flags} flags, {records_n} records: "
                    f"{seconds * 1000:8.1f} ms (median of {args.runs})"
                )
            ratio = found["whole documents"] / found["attach"]
            print(f"{name:10} whole documents / attach: {ratio:.1f}x")


if __name__ == "__main__":
    main()
