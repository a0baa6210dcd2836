"""Stored blocking flags per (network, service, method): judged again at every batch, queried.

Functions take a Connection inside the caller's transaction; ``Store`` owns transactions. The
rules are collector.analysis's; this module feeds them stored observations and keeps their
answer. A reopened flag is a new row (the closed one stays as history), so the current flag of
a (network, service, method) is its row with the latest ``first_seen``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collector.analysis.flags import Flag, Observation, evaluate
from collector.store import addresses, looks
from collector.store.measurements import MeasurementRow, rfc3339
from collector.store.schema import (
    UTC,
    check_asn,
    check_text,
    check_time,
    flags,
    measurements,
    network_key,
)

# The evidence a pair is judged on: records of the last two days, the latest blocked ones at most.
WINDOW = datetime.timedelta(days=2)
OBSERVATION_CAP = 1000
STATES = ("open", "closed")
# Namespace of the pair locks: pg_advisory_xact_lock(int4, int4) keys never meet the one-bigint
# key of the migration lock (collector/store/migrations/env.py).
PAIR_LOCK_CLASS = 0x5B1F

Pair = tuple[int | None, str | None, str]
"""A (asn, network, service) whose flags a batch may change."""


def flag_id(f: Flag) -> str:
    """Return the stable id of a flag: a hash of its network, service, method and first_seen."""
    key = [f.asn, f.network, f.service, f.method, f.first_seen.astimezone(UTC).isoformat()]
    raw = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def update(
    conn: sa.Connection, rows: Sequence[MeasurementRow], now: datetime.datetime
) -> list[Flag]:
    """Bring the findings up to date with a stored batch; return the flags it newly opened.

    Every pair the batch touches is judged again, duplicates included: a batch resubmitted after
    a failed update repairs what that update left undone.
    """
    check_time("now", now)
    pairs = sorted({(r.asn, r.network, r.service) for r in rows}, key=_pair_order)
    if not pairs:
        return []
    lock_pairs(conn, pairs)
    addresses.note(conn, rows)
    looks.note(conn, rows)
    opened: list[Flag] = []
    for pair in pairs:
        opened += _update_pair(conn, pair, now - WINDOW)
    return opened


def _pair_order(pair: Pair) -> tuple[str, str]:
    return network_key(pair[0], pair[1]), pair[2]


def lock_pairs(conn: sa.Connection, pairs: Sequence[Pair]) -> None:
    """Serialise writers of the same pairs on PostgreSQL (SQLite has one writer already).

    Taken in one order by every writer, so that two batches sharing pairs wait, never deadlock.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(p) for p in pairs})
    for key in keys:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PAIR_LOCK_CLASS, key)))


def _lock_key(pair: Pair) -> int:
    digest = hashlib.sha256("\x00".join(_pair_order(pair)).encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _update_pair(conn: sa.Connection, pair: Pair, since: datetime.datetime) -> list[Flag]:
    key = network_key(pair[0], pair[1])
    current = _current_flags(conn, pair)
    mine = _observations(conn, pair, since)
    others = [_observation(r) for r in looks.latest(conn, pair[2], since, besides=key)]
    known = {flag_id(f): f for f in current}
    opened = []
    for f in evaluate(mine, current, others):
        fid = flag_id(f)
        if fid not in known:
            conn.execute(sa.insert(flags).values(id=fid, **_flag_values(f)))
        elif known[fid] != f:
            conn.execute(sa.update(flags).where(flags.c.id == fid).values(**_flag_values(f)))
        if f.state == "open" and (fid not in known or known[fid].state != "open"):
            opened.append(f)
    return opened


def _observations(conn: sa.Connection, pair: Pair, since: datetime.datetime) -> list[Observation]:
    """Return what the rules weigh of a pair, oldest first: its blocked records (the latest
    OBSERVATION_CAP) and each probe's latest look (the rules read no other record)."""
    asn, network, service = pair
    m = measurements.c
    same_network = [
        # `IS NULL` / `=`: PostgreSQL cannot serve IS NOT DISTINCT FROM by an index
        m.asn.is_(None) if asn is None else m.asn == asn,
        m.network.is_(None) if network is None else m.network == network,
    ]
    stmt = (
        sa.select(*_OBSERVATION_COLUMNS)
        .where(m.service == service, *same_network, m.status == "blocked", m.started_at >= since)
        .order_by(m.started_at.desc(), m.id.desc())
        .limit(OBSERVATION_CAP)
    )
    found = {row.record_id: _observation(row) for row in conn.execute(stmt)}
    for row in looks.latest(conn, service, since, on=network_key(asn, network)):
        found.setdefault(row.record_id, _observation(row))
    return sorted(found.values(), key=lambda o: (o.started_at, o.record_id))


_OBSERVATION_COLUMNS = (
    measurements.c.id.label("record_id"),
    measurements.c.probe_id,
    measurements.c.asn,
    measurements.c.network,
    measurements.c.service,
    measurements.c.category,
    measurements.c.started_at,
    measurements.c.status,
    measurements.c.method,
    measurements.c.blockpage,
)


def _observation(row: Any) -> Observation:
    return Observation(
        record_id=row.record_id,
        probe_id=row.probe_id,
        asn=row.asn,
        network=row.network,
        service=row.service,
        category=row.category,
        started_at=row.started_at,
        status=row.status,
        method=row.method,
        blockpage=row.blockpage,
    )


def _current_flags(conn: sa.Connection, pair: Pair) -> list[Flag]:
    """Return the latest flag of each method of the pair (open, or closed as history's end)."""
    stmt = (
        sa.select(flags)
        .where(
            flags.c.network_key == network_key(pair[0], pair[1]),
            flags.c.service == pair[2],
        )
        .order_by(flags.c.method, flags.c.first_seen)
    )
    latest = {row.method: _flag(row) for row in conn.execute(stmt)}
    return list(latest.values())


def _flag(row: Any) -> Flag:
    return Flag(
        asn=row.asn,
        network=row.network,
        service=row.service,
        category=row.category,
        method=row.method,
        state=row.state,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        probes=tuple(row.probes),
        confidence=row.confidence,
        evidence=tuple(row.evidence),
        fingerprinted=row.fingerprinted,
        closed_at=row.closed_at,
    )


def _flag_values(f: Flag) -> dict[str, Any]:
    return {
        "network_key": network_key(f.asn, f.network),
        "asn": f.asn,
        "network": f.network,
        "service": f.service,
        "category": f.category,
        "method": f.method,
        "state": f.state,
        "first_seen": f.first_seen,
        "last_seen": f.last_seen,
        "closed_at": f.closed_at,
        "probes": list(f.probes),
        "confidence": f.confidence,
        "evidence": list(f.evidence),
        "fingerprinted": f.fingerprinted,
    }


def query(
    conn: sa.Connection,
    *,
    asn: int | None = None,
    network: str | None = None,
    service: str | None = None,
    category: str | None = None,
    method: str | None = None,
    state: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Return the flags matching every given filter, the latest seen first.

    ``since``/``until`` keep the flags in force at some time in [since, until): not closed
    before ``since``, first seen before ``until``. Raise ValueError naming a bad filter.
    """
    texts = {"network": network, "service": service, "category": category, "method": method}
    for name, value in texts.items():
        check_text(name, value)
    check_asn("asn", asn)
    check_time("since", since)
    check_time("until", until)
    if state is not None and state not in STATES:
        raise ValueError(f"state: {state!r} is not one of {STATES}")
    c = flags.c
    conditions = [c[name] == value for name, value in texts.items() if value is not None]
    if asn is not None:
        conditions.append(c.asn == asn)
    if state is not None:
        conditions.append(c.state == state)
    if since is not None:
        conditions.append(sa.or_(c.closed_at.is_(None), c.closed_at >= since))
    if until is not None:
        conditions.append(c.first_seen < until)
    stmt = sa.select(flags).where(*conditions).order_by(c.last_seen.desc(), c.id)
    return [_flag_item(row) for row in conn.execute(stmt)]


def _flag_item(row: Any) -> dict[str, Any]:
    return flag_view(_flag(row), row.id)


def flag_view(f: Flag, fid: str | None = None) -> dict[str, Any]:
    """A flag as GET /api/v1/flags shows it (SPEC.md), plus id, category and closed_at."""
    return {
        "id": fid or flag_id(f),
        "asn": f.asn,
        "network": f.network,
        "service": f.service,
        "category": f.category,
        "method": f.method,
        "state": f.state,
        "first_seen": rfc3339(f.first_seen),
        "last_seen": rfc3339(f.last_seen),
        "closed_at": None if f.closed_at is None else rfc3339(f.closed_at),
        "probes": list(f.probes),
        "confidence": f.confidence,
        "evidence": list(f.evidence),
    }


def open_series(conn: sa.Connection) -> list[tuple[str | None, str, str, str]]:
    """Return every open flag as (network, service, category, method), for the metrics."""
    c = flags.c
    stmt = (
        sa.select(c.network, c.service, c.category, c.method)
        .where(c.state == "open")
        .order_by(c.network, c.service, c.method)
    )
    return [(r.network, r.service, r.category, r.method) for r in conn.execute(stmt)]
