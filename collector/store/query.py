"""Measurement queries: filters, the stable order (started_at, id) and opaque keyset cursors.

A cursor is the (started_at, id) of the last item of a page, base64url-encoded JSON. The next
page starts strictly after it in the query's direction (``order``: asc, the default, or desc,
its exact reverse), so paging never repeats or skips a record, even while new ones arrive (those
that sort after the cursor show up on later pages; those before it do not).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from collector.store import filters
from collector.store.schema import UTC, measurements
from probe.times import parse_rfc3339

DEFAULT_LIMIT = 100
ORDER = (measurements.c.started_at, measurements.c.id)


@dataclass(frozen=True)
class MeasurementQuery:
    """Filters on measurements (``filters.MEASUREMENT_FILTERS``); ``None`` means "any". Times
    are aware datetimes.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at``. ``limit`` bounds a
    page of ``query_measurements``; ``iter_measurements`` and ``count_measurements`` ignore it.
    ``cursor`` is a page's ``next_cursor``; the filters should stay the same from page to page.
    ``order`` is "asc" (None: the default) or "desc", the exact reverse.
    """

    service: str | None = None
    domain: str | None = None
    asn: int | None = None
    network: str | None = None
    status: str | None = None
    method: str | None = None
    probe_id: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    order: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        filters.check((*filters.PAGING, *filters.MEASUREMENT_FILTERS), vars(self))
        if self.cursor is not None:
            decode_cursor(self.cursor)


@dataclass(frozen=True)
class Page:
    """One page of stored records, and the cursor of the next page (None on the last)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def where(q: MeasurementQuery) -> list[sa.ColumnElement[bool]]:
    """Return the SQL conditions for the filters of ``q`` (not its cursor)."""
    return filters.where(filters.MEASUREMENT_FILTERS, measurements.c, vars(q))


def descending(q: MeasurementQuery) -> bool:
    return filters.descending(vars(q))


def order_by(q: MeasurementQuery) -> tuple[Any, ...]:
    """Return the ORDER BY of ``q``: (started_at, id), or its exact reverse."""
    return tuple(c.desc() for c in ORDER) if descending(q) else ORDER


def after(position: tuple[datetime.datetime, str], reverse: bool = False) -> sa.ColumnElement[bool]:
    """Return the condition "sorts strictly after ``position``" in the order (started_at, id),
    or with ``reverse`` in its reverse (strictly before)."""
    started_at, record_id = position
    c = measurements.c
    # Spelled out rather than a row-value comparison: both dialects use the leading index column
    # for the range, and the form reads the same on either.
    if reverse:
        later = sa.and_(c.started_at == started_at, c.id < record_id)
        return sa.or_(c.started_at < started_at, later)
    return sa.or_(c.started_at > started_at, sa.and_(c.started_at == started_at, c.id > record_id))


def encode_cursor(started_at: datetime.datetime, record_id: str) -> str:
    """Return the opaque, URL-safe cursor that points just after this record."""
    raw = json.dumps([started_at.astimezone(UTC).isoformat(), record_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime.datetime, str]:
    """Return the position a cursor points after, or raise ValueError("cursor: ...")."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, record_id = json.loads(raw)
        position = parse_rfc3339(started), record_id
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise ValueError("cursor: not a cursor this API gave out") from None
    if position[0].tzinfo is None or not isinstance(record_id, str) or "\x00" in record_id:
        raise ValueError("cursor: not a cursor this API gave out")
    return position
