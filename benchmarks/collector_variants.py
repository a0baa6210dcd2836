"""What-if collectors: `surblocage-collector` with one store function replaced, to measure a fix.

usage: python -m benchmarks.collector_variants VARIANT serve|export ARGS...
- shipped: the collector as it is;
- shallow_rows: the batch insert builds its parameters with a shallow dict per row instead of
  ``dataclasses.asdict``, which deep-copies every stored document (the profile of
  benchmarks/ingest.py --profile shows that copy as the largest single cost of an ingest).
Product code is not changed: the replacement is installed in this process only.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector import cli
from collector.store import measurements
from collector.store.schema import measurements as table

FIELDS = tuple(f.name for f in dataclasses.fields(measurements.MeasurementRow))


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


VARIANTS: dict[str, Callable[[], None] | None] = {"shipped": None, "shallow_rows": shallow_rows}


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
