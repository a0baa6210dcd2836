"""The latest look of each probe at each service on each network through each resolver path.

The flag rules read every blocked record of a (network, service) pair, but of the records that
reach a service only each probe's latest, and of other networks only their latest: this table
answers both in one row a probe, instead of every record of the window. The judge
(collector/judge/judgement.py) applies each batch's looks in turn and stores the outcome here.
Functions take a Connection inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector import observation
from collector.observation import Observation
from collector.store import bulk
from collector.store.schema import latest_looks, network_key

KEY = ("service", "network_key", "resolver", "probe_id")


def store(conn: sa.Connection, looks: Sequence[tuple[str, Observation]]) -> None:
    """Keep each (service, network, resolver path, probe)'s newest of ``looks`` (resolver path,
    observation) unless the stored one is newer.

    A record that arrives late (older than the stored look) changes nothing.
    """
    newest: dict[tuple[str, str, str, str], Observation] = {}
    for resolver, o in looks:
        key = (o.service, network_key(o.asn, o.network), resolver, o.probe_id)
        kept = newest.get(key)
        if kept is None or (o.started_at, o.record_id) > (kept.started_at, kept.record_id):
            newest[key] = o
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


def _values(key: tuple[str, str, str, str], o: Observation) -> dict[str, Any]:
    _, nkey, resolver, _ = key
    return {"network_key": nkey, "resolver": resolver, **observation.values(o)}
