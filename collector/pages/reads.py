"""What the pages read from the store: functions of a Connection (run with ``Store.read``)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collector.judge import flags as stored_flags
from collector.pages.views import Look
from collector.store.schema import ISP, flags, latest_looks, measurements

# A service counts as down on a network when its latest record there says so this recently.
DOWN_WINDOW = datetime.timedelta(hours=6)


def looks(conn: sa.Connection, now: datetime.datetime) -> list[Look]:
    """The latest decisive look at each (network, service), from each probe's latest look (ok
    or blocked), overridden by a later `down` record of the last DOWN_WINDOW."""
    c = latest_looks.c
    latest: dict[tuple[Any, Any, str], Look] = {}
    # the line's own resolver's looks: what the network does (a public path's are its flags')
    stmt = sa.select(c.asn, c.network, c.service, c.category, c.status, c.started_at).where(
        c.resolver == ISP
    )
    for r in conn.execute(stmt):
        key = (r.asn, r.network, r.service)
        if key not in latest or r.started_at > latest[key].at:
            latest[key] = Look(r.asn, r.network, r.service, r.category, r.status, r.started_at)
    m = measurements.c
    down = (
        sa.select(m.asn, m.network, m.service, m.category, sa.func.max(m.started_at).label("at"))
        .where(m.status == "down", m.started_at >= now - DOWN_WINDOW)
        .group_by(m.asn, m.network, m.service, m.category)
    )
    for d in conn.execute(down):
        key = (d.asn, d.network, d.service)
        if key not in latest or d.at > latest[key].at:
            latest[key] = Look(d.asn, d.network, d.service, d.category, "down", d.at)
    return list(latest.values())


def flag(conn: sa.Connection, fid: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Return a flag as the API shows it and its history (every flag of the same network,
    service, resolver path and method, first seen first), or None for an unknown id."""
    row = conn.execute(sa.select(flags).where(flags.c.id == fid)).first()
    if row is None:
        return None
    c = flags.c
    stmt = (
        sa.select(flags)
        .where(
            c.network_key == row.network_key,
            c.service == row.service,
            c.resolver == row.resolver,
            c.method == row.method,
        )
        .order_by(c.first_seen)
    )
    wide = stored_flags.resolver_wide(conn) if row.resolver != ISP else set()
    history = [stored_flags.item(r, wide) for r in conn.execute(stmt)]
    return stored_flags.item(row, wide), history


def records(conn: sa.Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Return the stored records with these ids (at most a flag's evidence), in ``ids`` order."""
    if not ids:
        return []
    stmt = sa.select(measurements.c.id, measurements.c.doc).where(measurements.c.id.in_(ids))
    found = {r.id: r.doc for r in conn.execute(stmt)}
    return [found[i] for i in ids if i in found]
