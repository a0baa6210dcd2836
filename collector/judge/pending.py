"""The pairs waiting for judgement: marked in a batch's own transaction, taken by the judge.

A (network, service, resolver path) pair is marked once per batch that stores a record of it, in
the batch's transaction, with the batch's newest ok-or-blocked look of the pair: once
acknowledged, its pairs are durable (a crash loses no judgement). A record has a look through
each of its resolver paths (collector/judge/paths.py); its blocked looks are written to
``blocked_looks`` in the same transaction, the evidence the judge weighs. The judge
(collector/judge/judgement.py) takes rows in ``seq`` order, batch after batch, and deletes
exactly the rows it took, so that a pair marked again while it was being judged is judged
again. Functions take a Connection inside the caller's transaction; the Store owns
transactions.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collector import observation
from collector.judge import paths
from collector.observation import Observation
from collector.store import bulk
from collector.store.measurements import MeasurementRow
from collector.store.schema import ISP, blocked_looks, network_key, pending_pairs

Pair = tuple[int | None, str | None, str, str]
"""A (asn, network, service, resolver path) whose flags stored records may change."""
# Only these decide a flag: a `down` or `inconclusive` look says nothing about blocking.
DECISIVE = ("ok", "blocked")


@dataclasses.dataclass(frozen=True)
class Mark:
    """One pending row: a pair one batch touched, and that batch's newest look of it."""

    seq: int
    batch: str
    pair: Pair
    received_at: datetime.datetime
    look: Observation | None


_MARK = sa.insert(pending_pairs)
_BLOCKED = sa.insert(blocked_looks)
_LATEST = sa.select(sa.func.max(pending_pairs.c.seq))
_COUNT = sa.select(sa.func.count()).select_from(pending_pairs)


def mark(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> int:
    """Mark every pair of ``rows`` (one batch, of new records) as waiting for judgement, with
    the batch's newest decisive look of each probe, and keep their blocked looks; return how
    many rows were marked."""
    newest: dict[tuple[str, str, str, str], Observation | None] = {}
    blocked: list[dict[str, Any]] = []
    for row in rows:
        nkey = network_key(row.asn, row.network)
        for resolver, look in paths.looks(row):
            key = (nkey, row.service, resolver, row.probe_id)
            kept = newest.get(key)
            if look.status in DECISIVE and (kept is None or _newer(look, kept)):
                newest[key] = look
            else:
                newest.setdefault(key, None)
            if look.status == "blocked":
                blocked.append(
                    observation.values(look)
                    | {"network_key": nkey, "resolver": resolver, "received_at": row.received_at}
                )
    if not newest:
        return 0
    bulk.executemany(conn, "insert blocked_looks", lambda _: _BLOCKED, blocked)
    batch = (min(r.id for r in rows), max(r.received_at for r in rows))
    marks = [_values(key, newest[key], batch) for key in sorted(newest)]
    bulk.executemany(conn, "mark pending_pairs", lambda _: _MARK, marks)
    return len(marks)


def _newer(look: Observation, kept: Observation) -> bool:
    return (look.started_at, look.record_id) > (kept.started_at, kept.record_id)


def _values(
    key: tuple[str, str, str, str],
    look: Observation | None,
    batch: tuple[str, datetime.datetime],
) -> dict[str, Any]:
    """Return a mark's row: the pair, the batch, and the look's observation (null: none)."""
    nkey, service, resolver, _ = key
    values: dict[str, Any]
    if look is None:
        values = dict.fromkeys(observation.NAMES)
    else:
        values = observation.values(look)
    values.update(
        batch=batch[0], network_key=nkey, service=service, resolver=resolver, received_at=batch[1]
    )
    return values


def mark_pairs(
    conn: sa.Connection, pairs: Sequence[Pair], batch: str, now: datetime.datetime
) -> int:
    """Mark ``pairs`` for judgement again without a new look (a probe revoked: the flags it
    supported are weighed without it); ``batch`` names the cause. Return how many."""
    marks = [
        dict.fromkeys(observation.NAMES)
        | {"batch": batch, "network_key": network_key(a, n), "service": s, "resolver": r}
        | {"received_at": now}
        for a, n, s, r in sorted(set(pairs), key=order)
    ]
    if marks:
        bulk.executemany(conn, "mark pending_pairs", lambda _: _MARK, marks)
    return len(marks)


def order(pair: Pair) -> tuple[str, str, str]:
    """The one order of pairs (locks, marks, judgement): network, service, resolver path."""
    return network_key(pair[0], pair[1]), pair[2], pair[3]


def latest(conn: sa.Connection) -> int | None:
    """Return the highest ``seq`` marked and not yet judged, or None when nothing waits."""
    found = conn.execute(_LATEST).scalar()
    return None if found is None else int(found)


def count(conn: sa.Connection) -> int:
    """Return how many marks wait for judgement (a pair marked by n batches counts n)."""
    return int(conn.execute(_COUNT).scalar_one())


def take(conn: sa.Connection, upto: int, limit: int) -> list[Mark]:
    """Return up to ``limit`` waiting rows with ``seq <= upto``, oldest first."""
    c = pending_pairs.c
    stmt = sa.select(pending_pairs).where(c.seq <= upto).order_by(c.seq).limit(limit)
    return [_mark(r) for r in conn.execute(stmt)]


def still_waiting(conn: sa.Connection, marks: Sequence[Mark]) -> list[Mark]:
    """Return those of ``marks`` that no other judge has deleted meanwhile."""
    if not marks:
        return []
    c = pending_pairs.c
    stmt = sa.select(c.seq).where(c.seq.in_(sorted(m.seq for m in marks)))
    left = set(conn.execute(stmt).scalars())
    return [m for m in marks if m.seq in left]


def delete(conn: sa.Connection, marks: Sequence[Mark]) -> None:
    """Delete the rows the judge took (and only those: later marks stay)."""
    if marks:
        seqs = sorted(m.seq for m in marks)
        conn.execute(sa.delete(pending_pairs).where(pending_pairs.c.seq.in_(seqs)))


def _mark(row: Any) -> Mark:
    asn, network = json.loads(row.network_key)
    look = observation.from_row(row) if row.record_id is not None else None
    pair = (asn, network, row.service, row.resolver or ISP)
    return Mark(row.seq, row.batch, pair, row.received_at, look)
