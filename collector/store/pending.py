"""The pairs waiting for judgement: marked in a batch's own transaction, taken by the judge.

A (network, service) pair is marked once per batch that stores a record of it, in the batch's
transaction: once acknowledged, its pairs are durable (a crash loses no judgement). The judge
(collector/store/judgement.py) takes rows in ``seq`` order and deletes exactly the rows it took,
so that a pair marked again while it was being judged is judged again. Functions take a
Connection inside the caller's transaction; ``Store`` owns transactions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from collector.store import bulk
from collector.store.measurements import MeasurementRow
from collector.store.schema import network_key, pending_pairs

Pair = tuple[int | None, str | None, str]
"""A (asn, network, service) whose flags stored records may change."""
Taken = tuple[int, Pair]
"""A pending row: its ``seq`` and its pair."""

_MARK = sa.insert(pending_pairs)
_LATEST = sa.select(sa.func.max(pending_pairs.c.seq))
_COUNT = sa.select(sa.func.count()).select_from(pending_pairs)
_COLUMNS = (pending_pairs.c.seq, pending_pairs.c.network_key, pending_pairs.c.service)


def mark(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> int:
    """Mark every pair of ``rows`` as waiting for judgement; return how many pairs."""
    keys = sorted({(network_key(r.asn, r.network), r.service) for r in rows})
    if keys:
        marks = [{"network_key": k, "service": s} for k, s in keys]
        bulk.executemany(conn, "mark pending_pairs", lambda _: _MARK, marks)
    return len(keys)


def latest(conn: sa.Connection) -> int | None:
    """Return the highest ``seq`` marked and not yet judged, or None when nothing waits."""
    found = conn.execute(_LATEST).scalar()
    return None if found is None else int(found)


def count(conn: sa.Connection) -> int:
    """Return how many marks wait for judgement (a pair marked by n batches counts n)."""
    return int(conn.execute(_COUNT).scalar_one())


def take(conn: sa.Connection, upto: int, limit: int) -> list[Taken]:
    """Return up to ``limit`` waiting rows with ``seq <= upto``, oldest first."""
    c = pending_pairs.c
    stmt = sa.select(*_COLUMNS).where(c.seq <= upto).order_by(c.seq).limit(limit)
    return [(r.seq, _pair(r.network_key, r.service)) for r in conn.execute(stmt)]


def still_waiting(conn: sa.Connection, seqs: Sequence[int]) -> list[Taken]:
    """Return those of ``seqs`` that no other judge has deleted meanwhile."""
    if not seqs:
        return []
    c = pending_pairs.c
    stmt = sa.select(*_COLUMNS).where(c.seq.in_(sorted(seqs))).order_by(c.seq)
    return [(r.seq, _pair(r.network_key, r.service)) for r in conn.execute(stmt)]


def delete(conn: sa.Connection, seqs: Sequence[int]) -> None:
    """Delete the rows the judge took (and only those: later marks stay)."""
    if seqs:
        conn.execute(sa.delete(pending_pairs).where(pending_pairs.c.seq.in_(sorted(seqs))))


def _pair(key: str, service: str) -> Pair:
    asn, network = json.loads(key)
    return asn, network, service
