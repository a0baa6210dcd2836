"""The tables the store queries, one definition for SQLite and PostgreSQL (head of the migrations).

Alembic revisions under ``migrations/versions`` are frozen copies of this shape; a test compares
the migrated database with this module. No column holds the address a submission came from.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import sqlalchemy as sa

UTC = datetime.UTC

# Named constraints, so that later revisions (batch mode on SQLite) can alter them by name.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime.datetime]):
    """An aware datetime stored in UTC: timestamptz on PostgreSQL, fixed-width text on SQLite.

    SQLite keeps ``YYYY-MM-DD HH:MM:SS.ffffff`` without an offset, so every value is converted
    to UTC first: the text then sorts in time order, and comparisons agree with PostgreSQL's.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime.datetime) or value.tzinfo is None:
            raise ValueError(f"time: {value!r} is not an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(sa.TypeDecorator[dict[str, Any]]):
    """A JSON object kept as text, byte for byte the same on both dialects.

    Not PostgreSQL's jsonb: it rejects ``\\u0000``, which a probe may legitimately report in a
    page title, and it would reorder keys.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dict[str, Any] | None:
        return None if value is None else json.loads(value)


MAX_ASN = 2**32 - 1


def check_text(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or text both dialects can hold.

    PostgreSQL's text type refuses NUL characters; SQLite would keep them. Refusing them on both
    keeps the two backends interchangeable and turns a database error into a 4xx.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected a string, got {value!r}")
    if "\x00" in value:
        raise ValueError(f"{path}: contains a NUL character")


def check_asn(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or a 32-bit AS number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ASN:
        raise ValueError(f"{path}: {value!r} is not an AS number (0 to {MAX_ASN})")


def check_time(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or an aware datetime."""
    if value is None:
        return
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        raise ValueError(f"{path}: {value!r} is not an aware datetime")


metadata = sa.MetaData(naming_convention=NAMING)
# AS numbers are BigInteger: 32-bit unsigned (RFC 6793) overflows PostgreSQL's integer.

probes = sa.Table(
    "probes",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("declared_asn", sa.BigInteger),
    sa.Column("declared_network", sa.Text),
    sa.Column("last_seen_at", UTCDateTime),
    sa.Column("last_asn", sa.BigInteger),
    sa.Column("last_network", sa.Text),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("cc", sa.Text),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("domain", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("method", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("blockpage", sa.Text),
    sa.Column("probe_status", sa.Text),
    sa.Column("probe_method", sa.Text),
    sa.Column("probe_detail", sa.Text),
    sa.Column("probe_blockpage", sa.Text),
    sa.Column("doc", JSONText, nullable=False),
)

# Every filter leads an index that ends in the order (started_at, id): a filtered page is one
# index range scan, without a sort.
sa.Index(None, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.service, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.domain, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.asn, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.network, measurements.c.started_at, measurements.c.id)
sa.Index(
    None,
    measurements.c.status,
    measurements.c.method,
    measurements.c.started_at,
    measurements.c.id,
)
sa.Index(None, measurements.c.probe_id, measurements.c.started_at, measurements.c.id)
# The analysis reads what arrived lately (flags reflect every acknowledged batch).
sa.Index(None, measurements.c.received_at)
