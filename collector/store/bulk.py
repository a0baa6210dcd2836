"""Many rows through one statement, cheaply: compiled once per dialect, times encoded once.

SQLAlchemy's executemany runs its bind processors on every value of every row (about
half of what noting a batch's addresses and looks cost). Here a statement is compiled once per
dialect and handed to the driver with plain parameters; the one value that needs processing,
an aware time (schema.UTCDateTime), is encoded as UTCDateTime would: on SQLite the fixed-width
UTC text, on PostgreSQL the datetime itself. No JSON columns: those keep SQLAlchemy's types.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from collector.store.schema import UTC, UTCDateTime

_compiled: dict[tuple[int, str], tuple[str, tuple[str, ...] | None, frozenset[str]]] = {}


def executemany(
    conn: sa.Connection,
    name: str,
    build: Callable[[str], sa.Insert],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Execute the statement ``build(dialect name)`` once per row of ``rows``, in one call.

    Every row has the same keys; ``name`` says which statement it is: it is built and compiled
    once per dialect and name (building an upsert costs more than a batch's parameters).
    """
    if not rows:
        return
    sql, order, times = _compile(conn.dialect, name, build, list(rows[0]))
    encode = _sqlite_time if conn.dialect.name == "sqlite" else _pg_time
    params: list[Any] = []
    for row in rows:
        values = {k: encode(v) if k in times and v is not None else v for k, v in row.items()}
        params.append(values if order is None else tuple(values[k] for k in order))
    conn.exec_driver_sql(sql, params)


def _compile(
    dialect: sa.Dialect, name: str, build: Callable[[str], sa.Insert], columns: list[str]
) -> tuple[str, tuple[str, ...] | None, frozenset[str]]:
    key = (id(dialect.__class__), name)
    found = _compiled.get(key)
    if found is None:
        compiled = build(dialect.name).compile(dialect=dialect, column_keys=columns)
        order = tuple(compiled.positiontup) if compiled.positiontup else None
        times = frozenset(b.key for b in compiled.binds.values() if isinstance(b.type, UTCDateTime))
        found = _compiled[key] = (compiled.string, order, times)
    return found


def _sqlite_time(value: datetime.datetime) -> str:
    # what UTCDateTime then SQLite's DATETIME make of it: naive UTC, microseconds always shown
    if value.tzinfo is None:
        raise ValueError(f"time: {value!r} is not an aware datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError(f"time: {value!r} is not an aware datetime")
    return value.astimezone(UTC)
