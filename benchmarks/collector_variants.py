"""What-if collectors: `surblocage-collector` with one store function replaced, to measure a fix.

usage: python -m benchmarks.collector_variants VARIANT serve|export ARGS...
- shipped: the collector as it is;
- shallow_rows: the batch insert builds its parameters with a shallow dict per row instead of
  ``dataclasses.asdict``, which deep-copies every stored document (the profile of
  benchmarks/ingest.py --profile shows that copy as the largest single cost of an ingest).
- pool1, pool2: each batch is decoded, validated and given its verdicts (collector.ingest
  ``prepare_batch``, through the ``State.prepare_batch`` seam) in a pool of 1 or 2 worker
  processes, the event loop's process keeping HTTP, the store and the judge: what spreading the
  per-record CPU over cores would give. Default fingerprints, no ASN database, as
  benchmarks/collectord.py runs the collector.
Product code is not changed: the replacement is installed in this process only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector import app, cli, ingest, signatures
from collector.store import measurements
from collector.store.schema import measurements as table
from probe import fingerprints

FIELDS = tuple(f.name for f in dataclasses.fields(measurements.MeasurementRow) if f.init)


def shallow_insert(
    conn: sa.Connection, rows: Sequence[measurements.MeasurementRow]
) -> measurements.InsertOutcome:
    """collector.store.measurements.insert with shallow row dicts (the same statement)."""
    distinct: dict[str, measurements.MeasurementRow] = {}
    for row in rows:
        distinct.setdefault(row.id, row)
    if not distinct:
        return measurements.InsertOutcome(inserted=0, duplicates=0)
    params = [{f: getattr(distinct[key], f) for f in FIELDS} for key in sorted(distinct)]
    dialect = sa.dialects.postgresql if conn.dialect.name == "postgresql" else sa.dialects.sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=["id"])
    new_ids = frozenset(conn.execute(stmt.returning(table.c.id), params).scalars())
    return measurements.InsertOutcome(
        inserted=len(new_ids), duplicates=len(distinct) - len(new_ids), new_ids=new_ids
    )


def shallow_rows() -> None:
    measurements.insert = shallow_insert


_FINGERPRINTS: Any = None


def _worker_start() -> None:
    global _FINGERPRINTS
    _FINGERPRINTS = signatures.RememberedFingerprints(fingerprints.default_fingerprints())


def _prepare_in_worker(raw: bytes, max_records: int, probe: Any, looked_up: Any) -> list[Any]:
    return ingest.prepare_batch(raw, max_records, probe, looked_up, _FINGERPRINTS)


def pooled(workers: int) -> Callable[[], None]:
    """Install State.prepare_batch running in a pool of ``workers`` processes."""

    def install() -> None:
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(workers, context, _worker_start)

        async def prepare_batch(self: Any, raw: bytes, probe: Any, looked_up: Any) -> list[Any]:
            loop = asyncio.get_running_loop()
            max_records = self.config.max_batch_records
            job = functools.partial(_prepare_in_worker, raw, max_records, probe, looked_up)
            return await loop.run_in_executor(pool, job)

        app.State.prepare_batch = prepare_batch  # type: ignore[method-assign]

    return install


VARIANTS: dict[str, Callable[[], None] | None] = {
    "shipped": None,
    "shallow_rows": shallow_rows,
    "pool1": pooled(1),
    "pool2": pooled(2),
}


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in VARIANTS:
        print(f"usage: python -m benchmarks.collector_variants {{{','.join(VARIANTS)}}} ...")
        return 2
    install = VARIANTS[argv[0]]
    if install is not None:
        install()
    return cli.main(list(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
