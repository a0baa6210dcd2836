"""The latest look of each probe at each service on each network, kept current at every batch.

The flag rules read every blocked record of a (network, service) pair, but of the records that
reach a service only each probe's latest, and of other networks only their latest: this table
answers both in one row a probe, instead of every record of the window. Functions take a
Connection inside the caller's transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.store import bulk
from collector.store.measurements import MeasurementRow
from collector.store.schema import latest_looks, network_key

# Only these decide a flag: a `down` or `inconclusive` look says nothing about blocking.
DECISIVE = ("ok", "blocked")
KEY = ("service", "network_key", "probe_id")


def note(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> None:
    """Keep, for every (service, network, probe) of the rows, its newest ok-or-blocked look.

    A record that arrives late (older than the stored look) changes nothing.
    """
    newest: dict[tuple[str, str, str], MeasurementRow] = {}
    for row in rows:
        if row.status not in DECISIVE:
            continue
        key = (row.service, network_key(row.asn, row.network), row.probe_id)
        kept = newest.get(key)
        if kept is None or (row.started_at, row.id) > (kept.started_at, kept.id):
            newest[key] = row
    if not newest:
        return
    values = [_values(key, newest[key]) for key in sorted(newest)]  # one lock order (PostgreSQL)
    bulk.executemany(conn, "upsert latest_looks", _newer_upsert, values)


def _newer_upsert(dialect_name: str) -> sa.Insert:
    """Insert a look, or replace the stored one when this one is newer."""
    dialect = sa.dialects.postgresql if dialect_name == "postgresql" else sa.dialects.sqlite
    stmt = dialect.insert(latest_looks)
    new, old = stmt.excluded, latest_looks.c
    return stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={c.name: new[c.name] for c in latest_looks.c if c.name not in KEY},
        where=sa.or_(
            new.started_at > old.started_at,
            sa.and_(new.started_at == old.started_at, new.record_id > old.record_id),
        ),
    )


def _values(key: tuple[str, str, str], row: MeasurementRow) -> dict[str, Any]:
    service, nkey, probe_id = key
    return {
        "service": service,
        "network_key": nkey,
        "probe_id": probe_id,
        "record_id": row.id,
        "asn": row.asn,
        "network": row.network,
        "category": row.category,
        "started_at": row.started_at,
        "status": row.status,
        "method": row.method,
        "blockpage": row.blockpage,
    }


def latest(
    conn: sa.Connection,
    service: str,
    since: datetime.datetime,
    *,
    on: str | None = None,
    besides: str | None = None,
) -> list[Any]:
    """Return the latest looks at ``service`` since ``since``, each probe's on network ``on``,
    or every probe's of the networks other than ``besides``."""
    c = latest_looks.c
    stmt = sa.select(latest_looks).where(c.service == service, c.started_at >= since)
    if on is not None:
        stmt = stmt.where(c.network_key == on)
    if besides is not None:
        stmt = stmt.where(c.network_key != besides)
    return list(conn.execute(stmt))
