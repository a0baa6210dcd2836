"""Stored blocking flags per (network, service, resolver path, method): kept for the judge, queried.

Functions take a Connection inside the caller's transaction; the Store owns transactions. The
judgement (collector/judge/judgement.py) decides the flags; this module keeps them, and
serialises judges of one pair across processes. A reopened flag is a new row (the closed one
stays as history), so the current flag of a (network, service, resolver path, method) is its
row with the latest ``first_seen``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Sequence, Set
from typing import Any

import sqlalchemy as sa

from collector.judge.pending import Pair, order
from collector.judge.rules import Flag
from collector.store import filters
from collector.store.measurements import rfc3339
from collector.store.schema import ISP, UTC, flags, latest_looks, network_key

# Namespace of the pair locks: pg_advisory_xact_lock(int4, int4) keys never meet the one-bigint
# key of the migration lock (collector/store/migrations/env.py).
PAIR_LOCK_CLASS = 0x5B1F


def flag_id(f: Flag) -> str:
    """Return the stable id of a flag: a hash of its network, service, method and first_seen,
    and of its resolver path unless ``isp`` (the ids of flags from before paths stay)."""
    key: list[Any] = [
        f.asn,
        f.network,
        f.service,
        f.method,
        f.first_seen.astimezone(UTC).isoformat(),
    ]
    if f.resolver != ISP:
        key.append(f.resolver)
    raw = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def lock_pairs(conn: sa.Connection, pairs: Sequence[Pair]) -> None:
    """Serialise judges of the same pairs on PostgreSQL (SQLite has one writer already).

    Taken in one order by every judge (the ordered subquery), so that two judges sharing pairs
    wait, never deadlock; one statement for every pair of a chunk.
    """
    if conn.dialect.name != "postgresql" or not pairs:
        return
    keys = sorted({_lock_key(p) for p in pairs})
    conn.execute(_LOCK, {"keys": keys})


_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(:cls, k) FROM (SELECT unnest(CAST(:keys AS int[])) AS k "
    "ORDER BY k) AS ordered"
).bindparams(cls=PAIR_LOCK_CLASS)


def _lock_key(pair: Pair) -> int:
    nkey, service, resolver = order(pair)
    parts = (nkey, service) if resolver == ISP else (nkey, service, resolver)
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def current(conn: sa.Connection, pairs: Sequence[Pair]) -> dict[Pair, list[Flag]]:
    """Return each pair's latest flag of each method (open, or closed as history's end)."""
    wanted = {order(p): p for p in pairs}
    c = flags.c
    stmt = (
        sa.select(flags)
        .where(
            c.service.in_(sorted({p[2] for p in pairs})),
            c.network_key.in_(sorted({k for k, _, _ in wanted})),
        )
        .order_by(c.method, c.first_seen)
    )
    latest: dict[Pair, dict[str, Flag]] = {p: {} for p in pairs}
    for row in conn.execute(stmt):
        pair = wanted.get((row.network_key, row.service, row.resolver))
        if pair is not None:
            latest[pair][row.method] = _flag(row)
    return {p: list(by_method.values()) for p, by_method in latest.items()}


def write(conn: sa.Connection, new: Sequence[Flag], changed: Sequence[Flag]) -> None:
    """Overwrite the ``changed`` flags (by id), then insert the ``new`` ones, a statement each.

    In that order: a flag closed and reopened in one judgement is a closed row and a new open
    one, and at most one open row of a (network, service, method) may exist at any time.
    """
    if changed:
        stmt = sa.update(flags).where(flags.c.id == sa.bindparam("fid"))
        conn.execute(stmt, [{"fid": flag_id(f), **_flag_values(f)} for f in changed])
    if new:
        conn.execute(sa.insert(flags), [{"id": flag_id(f), **_flag_values(f)} for f in new])


_FIELDS = tuple(f.name for f in dataclasses.fields(Flag))
# Tuples in a Flag, JSON arrays in a row and in the API.
_LISTS = ("probes", "evidence")


def _flag(row: Any) -> Flag:
    values = {name: getattr(row, name) for name in _FIELDS}
    return Flag(**(values | {name: tuple(values[name]) for name in _LISTS}))


def _flag_values(f: Flag) -> dict[str, Any]:
    values = {name: getattr(f, name) for name in _FIELDS}
    values |= {name: list(values[name]) for name in _LISTS}
    return {"network_key": network_key(f.asn, f.network), **values}


def query(
    conn: sa.Connection,
    *,
    asn: int | None = None,
    network: str | None = None,
    service: str | None = None,
    category: str | None = None,
    method: str | None = None,
    state: str | None = None,
    resolver: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    order: str | None = None,
) -> list[dict[str, Any]]:
    """Return the flags matching every given filter, the latest seen first (``order`` "desc",
    the default), or with "asc" in the exact reverse order.

    ``since``/``until`` keep the flags in force at some time in [since, until): not closed
    before ``since``, first seen before ``until``. Raise ValueError naming a bad filter.
    """
    conditions = filters.where(filters.FLAG_FILTERS, flags.c, locals())  # the keywords
    latest_first = (flags.c.last_seen.desc(), flags.c.id)
    earliest_first = (flags.c.last_seen, flags.c.id.desc())
    sort = latest_first if filters.descending({"order": order}, "desc") else earliest_first
    stmt = sa.select(flags).where(*conditions).order_by(*sort)
    rows = list(conn.execute(stmt))
    wide = resolver_wide(conn) if any(r.resolver != ISP for r in rows) else set()
    return [item(row, wide) for row in rows]


def item(row: Any, wide: Set[tuple[str, str, str]] = frozenset()) -> dict[str, Any]:
    """A stored flag's row as GET /api/v1/flags shows it; ``wide``: ``resolver_wide``'s
    answer."""
    view = flag_view(_flag(row), row.id)
    view["scope"] = scope(row, wide)
    return view


# A network counts in a resolver's reach when one of its probes looked through that path lately.
SCOPE_WINDOW = datetime.timedelta(days=2)


def scope(row: Any, wide: Set[tuple[str, str, str]]) -> str:
    """``resolver`` when the flag is one of a public path's blocking seen on every network
    (``resolver_wide``), else ``network``."""
    if row.state == "open" and (row.resolver, row.service, row.method) in wide:
        return "resolver"
    return "network"


def resolver_wide(conn: sa.Connection) -> set[tuple[str, str, str]]:
    """Return the (resolver path, service, method) blocked on every network: open on two
    networks at least, and on each network whose probes looked at the service through that
    path in the SCOPE_WINDOW before the latest of these flags was last seen. The ``isp`` path
    is never one resolver: each network's own is another."""
    c = flags.c
    stmt = sa.select(c.network_key, c.service, c.resolver, c.method, c.last_seen).where(
        c.state == "open", c.resolver != ISP
    )
    flagged: dict[tuple[str, str, str], set[str]] = {}
    latest: dict[tuple[str, str, str], datetime.datetime] = {}
    for r in conn.execute(stmt):
        key = (r.resolver, r.service, r.method)
        flagged.setdefault(key, set()).add(r.network_key)
        latest[key] = max(latest.get(key, r.last_seen), r.last_seen)
    wide = {key for key, networks in flagged.items() if len(networks) >= 2}
    if not wide:
        return set()
    k = latest_looks.c
    looked = sa.select(k.resolver, k.service, k.network_key, k.started_at).where(
        k.resolver.in_(sorted({r for r, _, _ in wide})),
        k.service.in_(sorted({s for _, s, _ in wide})),
        k.started_at >= min(latest[key] for key in wide) - SCOPE_WINDOW,
    )
    reached: dict[tuple[str, str], list[tuple[str, datetime.datetime]]] = {}
    for look in conn.execute(looked):
        reached.setdefault((look.resolver, look.service), []).append(
            (look.network_key, look.started_at)
        )
    return {
        key
        for key in wide
        if all(
            nkey in flagged[key]
            for nkey, started_at in reached.get(key[:2], ())
            if started_at >= latest[key] - SCOPE_WINDOW
        )
    }


# What GET /api/v1/flags shows of a flag, in this order (docs/spec.md, plus category and closed_at).
VIEW = (
    "asn", "network", "service", "category", "method", "state", "first_seen", "last_seen",
    "closed_at", "probes", "networks", "control", "confidence", "evidence", "resolver",
)  # fmt: skip


def flag_view(f: Flag, fid: str | None = None) -> dict[str, Any]:
    """A flag as GET /api/v1/flags shows it (docs/spec.md), plus id, category and closed_at;
    its ``scope`` as one flag alone tells it: ``network``."""
    view: dict[str, Any] = {"id": fid or flag_id(f)}
    for name in VIEW:
        value = getattr(f, name)
        if isinstance(value, datetime.datetime):
            value = rfc3339(value)
        view[name] = list(value) if name in _LISTS else value
    view["scope"] = "network"  # "resolver": a public path blocking on every network (item)
    return view


def settle(conn: sa.Connection, fid: str, reached: bool) -> None:
    """Settle a newly opened flag on the collector's own control: the service reached, the
    flag rests on the collector's control; not reached (down for everybody, or a forged
    control), the flag is withdrawn: the open row deleted, the pair's history left as it was."""
    c = flags.c
    if reached:
        conn.execute(sa.update(flags).where(c.id == fid).values(control="collector"))
    else:
        conn.execute(sa.delete(flags).where(c.id == fid, c.state == "open"))


def open_pairs_of(conn: sa.Connection, probe_id: str) -> list[Pair]:
    """Return the pairs of the open flags ``probe_id`` supports."""
    c = flags.c
    stmt = sa.select(c.asn, c.network, c.service, c.resolver, c.probes).where(c.state == "open")
    return sorted(
        {
            (r.asn, r.network, r.service, r.resolver)
            for r in conn.execute(stmt)
            if probe_id in r.probes
        },
        key=order,
    )


def open_series(conn: sa.Connection) -> list[tuple[str | None, str, str, str]]:
    """Return every open flag of the ``isp`` path as (network, service, category, method), for
    the metrics: their series and alerts say what a network blocks; a public resolver's flags
    are the API's (``resolver``, ``scope``)."""
    c = flags.c
    stmt = (
        sa.select(c.network, c.service, c.category, c.method)
        .where(c.state == "open", c.resolver == ISP)
        .order_by(c.network, c.service, c.method)
    )
    return [(r.network, r.service, r.category, r.method) for r in conn.execute(stmt)]
