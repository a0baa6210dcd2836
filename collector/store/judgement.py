"""The judge: drains the pending pairs, weighs each pair's observations once, keeps the flags.

Issue 7: judging after the acknowledgement, many batches at once, instead of before each ack.
A chunk of pending rows is judged in one transaction: the pairs' observations are read set-wise
(one statement for the looks of every service, one per network for the blocked records, one for
the current flags), the rules of collector.analysis decide, the flags are written, and exactly
the pending rows judged are deleted. On PostgreSQL the pairs are locked first (advisory locks,
one order), so two processes never judge one pair at once, and a judge that waited for another
judges only what is still pending. Functions take a Connection inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collector.analysis.flags import Flag, Observation, evaluate
from collector.store import flags, pending
from collector.store.pending import Pair
from collector.store.schema import check_time, latest_looks, measurements, network_key

# The evidence a pair is judged on: records of the last two days, the latest blocked ones at most.
WINDOW = datetime.timedelta(days=2)
OBSERVATION_CAP = 1000
# Pending rows a transaction judges at most: a backlog is judged in several commits, so that
# ingest (SQLite's one writer) is never held back for long.
CHUNK_ROWS = 2000


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one chunk did: pending rows taken, distinct pairs judged, flags newly opened."""

    taken: int
    pairs: int
    opened: list[Flag]


def judge_chunk(
    conn: sa.Connection, now: datetime.datetime, upto: int, limit: int = CHUNK_ROWS
) -> Chunk:
    """Judge the oldest pending rows (``seq <= upto``, ``limit`` at most) and delete them."""
    check_time("now", now)
    taken = pending.take(conn, upto, limit)
    if not taken:
        return Chunk(0, 0, [])
    count = len(taken)
    if conn.dialect.name == "postgresql":
        flags.lock_pairs(conn, sorted({p for _, p in taken}, key=_order))
        taken = pending.still_waiting(conn, [seq for seq, _ in taken])  # another judge's done
    pairs = sorted({p for _, p in taken}, key=_order)
    opened = judge(conn, pairs, now) if pairs else []
    pending.delete(conn, [seq for seq, _ in taken])
    return Chunk(count, len(pairs), opened)


def _order(pair: Pair) -> tuple[str, str]:
    return network_key(pair[0], pair[1]), pair[2]


def judge(conn: sa.Connection, pairs: Sequence[Pair], now: datetime.datetime) -> list[Flag]:
    """Judge each pair again from its stored observations; return the flags newly opened."""
    since = now - WINDOW
    current = flags.current(conn, pairs)
    looks = _looks(conn, {p[2] for p in pairs}, since)
    blocked = _blocked(conn, pairs, since)
    new: list[Flag] = []
    changed: list[Flag] = []
    opened: list[Flag] = []
    for pair in pairs:
        key = network_key(pair[0], pair[1])
        mine = {o.record_id: o for o in blocked.get(pair, ())}
        others = []
        for nkey, o in looks.get(pair[2], ()):
            if nkey == key:
                mine.setdefault(o.record_id, o)
            else:
                others.append(o)
        observed = sorted(mine.values(), key=lambda o: (o.started_at, o.record_id))
        known = {flags.flag_id(f): f for f in current[pair]}
        for f in evaluate(observed, current[pair], others):
            fid = flags.flag_id(f)
            if fid not in known:
                new.append(f)
            elif known[fid] != f:
                changed.append(f)
            if f.state == "open" and (fid not in known or known[fid].state != "open"):
                opened.append(f)
    flags.write(conn, new, changed)
    return opened


def _looks(
    conn: sa.Connection, services: set[str], since: datetime.datetime
) -> dict[str, list[tuple[str, Observation]]]:
    """Return service -> (network key, latest look) of every probe of every network."""
    c = latest_looks.c
    stmt = sa.select(latest_looks).where(c.service.in_(sorted(services)), c.started_at >= since)
    out: dict[str, list[tuple[str, Observation]]] = defaultdict(list)
    for row in conn.execute(stmt):
        out[row.service].append((row.network_key, _observation(row)))
    return out


def _blocked(
    conn: sa.Connection, pairs: Sequence[Pair], since: datetime.datetime
) -> dict[Pair, list[Observation]]:
    """Return each pair's blocked records since ``since``, the latest OBSERVATION_CAP at most:
    one statement per network, for all of its services."""
    per_network: dict[tuple[int | None, str | None], set[str]] = defaultdict(set)
    for asn, network, service in pairs:
        per_network[(asn, network)].add(service)
    m = measurements.c
    out: dict[Pair, list[Observation]] = defaultdict(list)
    for (asn, network), services in per_network.items():
        same_network = [
            # `IS NULL` / `=`: PostgreSQL cannot serve IS NOT DISTINCT FROM by an index
            m.asn.is_(None) if asn is None else m.asn == asn,
            m.network.is_(None) if network is None else m.network == network,
        ]
        stmt = (
            sa.select(*_OBSERVATION_COLUMNS)
            .where(
                m.service.in_(sorted(services)),
                *same_network,
                m.status == "blocked",
                m.started_at >= since,
            )
            .order_by(m.service, m.started_at.desc(), m.id.desc())
        )
        for row in conn.execute(stmt):
            found = out[(asn, network, row.service)]
            if len(found) < OBSERVATION_CAP:
                found.append(_observation(row))
    return out


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
