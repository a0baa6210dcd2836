"""The stored domain index: names and their ranks, and the addresses resolutions saw them on.

Functions take a Connection inside the caller's transaction (the Store owns transactions). The
contract the census's readers rely on (docs/spec.md, "The domain index"): a resolution at time
``t`` stamps every address it answered (``domain_addresses.last_seen``) AND the domain's
``resolved_at`` with the same ``t``, so an address is a domain's current one while its
``last_seen`` equals the domain's ``resolved_at``. Both only move forward: a resolution recorded
after a later one changes neither the later's stamp nor which addresses are current.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.census.names import Entry
from collector.store import bulk
from collector.store.schema import domain_addresses, domains

IDS_PER_STATEMENT = 1000  # ids in one IN (...): well within SQLite's bound on parameters


class Due(NamedTuple):
    """A name to resolve, and where the oldest-first walk stands after it."""

    id: int
    name: str
    resolved_at: datetime.datetime | None


def upsert(
    conn: sa.Connection, entries: Sequence[Entry], t: datetime.datetime, intended: bool = False
) -> tuple[int, int]:
    """Add the names of ``entries`` not indexed yet (added at ``t``) and update the ranks of the
    others (a name without a rank keeps its rank); mark them all ``intended`` when asked, and
    leave the mark alone otherwise. Return (names added, names updated)."""
    ranks = dict(entries)  # a name twice in one chunk: its last rank
    if not ranks:
        return 0, 0
    c = domains.c
    known = set(conn.scalars(sa.select(c.name).where(c.name.in_(sorted(ranks)))))
    rows = [
        {"name": name, "rank": rank, "intended": intended, "added_at": t}
        for name, rank in sorted(ranks.items())
    ]
    build = functools.partial(_domains_upsert, intended)
    bulk.executemany(conn, f"upsert domains intended={intended}", build, rows)
    return len(ranks) - len(known), len(known)


def _dialect(dialect_name: str) -> Any:
    return sa.dialects.postgresql if dialect_name == "postgresql" else sa.dialects.sqlite


def _domains_upsert(intended: bool, dialect_name: str) -> sa.Insert:
    stmt = _dialect(dialect_name).insert(domains)
    new, old = stmt.excluded, domains.c
    changes: dict[str, Any] = {"rank": sa.func.coalesce(new.rank, old.rank)}
    if intended:
        changes["intended"] = new.intended
    return stmt.on_conflict_do_update(index_elements=["name"], set_=changes)


def record(
    conn: sa.Connection, t: datetime.datetime, answers: Mapping[int, Collection[str]]
) -> None:
    """Record a resolution at ``t``: domain id -> the addresses it answered (none: the name
    answered nothing, and has no current address from now on)."""
    rows = [
        {"domain_id": domain_id, "ip": ip, "first_seen": t, "last_seen": t}
        for domain_id, ips in sorted(answers.items())
        for ip in sorted(set(ips))
    ]
    if rows:  # sorted by key: concurrent writers lock rows in one order (no deadlock)
        bulk.executemany(conn, "upsert domain_addresses", _addresses_upsert, rows)
    ids = sorted(answers)
    c = domains.c
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        part = ids[start : start + IDS_PER_STATEMENT]
        conn.execute(
            sa.update(domains)
            .where(c.id.in_(part), sa.or_(c.resolved_at.is_(None), c.resolved_at < t))
            .values(resolved_at=t)
        )


def _addresses_upsert(dialect_name: str) -> sa.Insert:
    stmt = _dialect(dialect_name).insert(domain_addresses)
    new, old = stmt.excluded, domain_addresses.c
    later = sa.case((new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen)
    earlier = sa.case((new.first_seen < old.first_seen, new.first_seen), else_=old.first_seen)
    return stmt.on_conflict_do_update(
        index_elements=["domain_id", "ip"], set_={"first_seen": earlier, "last_seen": later}
    )


def due(conn: sa.Connection, cutoff: datetime.datetime, after: Due | None, limit: int) -> list[Due]:
    """Return up to ``limit`` names resolved before ``cutoff`` (or never), oldest first (never
    resolved first of all), past ``after``: the previous page's last name.

    The walk goes by position, not by state: a name whose resolution failed (and so was not
    recorded) is not handed out again in the same walk."""
    c = domains.c
    columns = (c.id, c.name, c.resolved_at)
    found: list[Due] = []
    if after is None or after.resolved_at is None:
        never = sa.select(*columns).where(c.resolved_at.is_(None))
        if after is not None:
            never = never.where(c.id > after.id)
        found = [Due(*r) for r in conn.execute(never.order_by(c.id).limit(limit))]
        if len(found) >= limit:
            return found
        after = None
    stale = sa.select(*columns).where(c.resolved_at < cutoff)
    if after is not None:
        # the first condition alone bounds the index range: a page reads from where the last
        # ended, not from the oldest name again
        stale = stale.where(
            c.resolved_at >= after.resolved_at,
            sa.or_(c.resolved_at > after.resolved_at, c.id > after.id),
        )
    stale = stale.order_by(c.resolved_at, c.id).limit(limit - len(found))
    return found + [Due(*r) for r in conn.execute(stale)]


def count_due(conn: sa.Connection, cutoff: datetime.datetime) -> int:
    """Return how many names were resolved before ``cutoff``, or never."""
    c = domains.c
    stale = sa.or_(c.resolved_at.is_(None), c.resolved_at < cutoff)
    return int(conn.scalar(sa.select(sa.func.count()).select_from(domains).where(stale)) or 0)


def count(conn: sa.Connection) -> int:
    """Return how many names the index holds."""
    return int(conn.scalar(sa.select(sa.func.count()).select_from(domains)) or 0)


def current(conn: sa.Connection, name: str) -> set[str]:
    """Return the addresses ``name`` currently resolves to (its latest resolution's answers)."""
    d, a = domains.c, domain_addresses.c
    stmt = (
        sa.select(a.ip)
        .join(domains, d.id == a.domain_id)
        .where(d.name == name, a.last_seen == d.resolved_at)
    )
    return set(conn.scalars(stmt))
