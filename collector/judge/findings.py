"""The findings kept on a Store: what a batch writes for the judge, the judgement, the reads.

Synchronous and thread-safe like the Store, whose transactions they run in; from asyncio call
them in a worker thread (collector/judge/background.py does). Database failures surface as
``StoreUnavailable``, bad filters as ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from collector import store as store_mod
from collector.judge import addresses, flags, judgement, pending
from collector.judge.rules import DEFAULT_POLICY, Flag, Policy
from collector.store import MeasurementRow, Store, probes


def note(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> None:
    """Write what the findings take from a batch's new rows, in the batch's transaction: the
    addresses they show (the control's, the blocked ones) and their pairs marked for the judge,
    with the batch's looks. Once the batch is acknowledged, its judgement is owed."""
    addresses.note(conn, rows)
    pending.mark(conn, rows)


def open_store(url: str) -> Store:
    """Open the store at ``url`` as the collector uses it: every batch it stores is noted for
    the judge (``note``). ValueError if the URL is bad."""
    return store_mod.open_store(url, on_new_rows=note)


@dataclasses.dataclass(frozen=True)
class Judged:
    """What ``Findings.judge_pending`` did: marks taken, pairs judged, flags newly opened."""

    taken: int
    pairs: int
    opened: list[Flag]


def _revoke(conn: sa.Connection, probe_id: str, now: datetime.datetime) -> int | None:
    if not probes.revoke(conn, probe_id, now):
        return None
    return pending.mark_pairs(conn, flags.open_pairs_of(conn, probe_id), f"revoke:{probe_id}", now)


class Findings:
    """The flags and collateral of one store (opened by ``open_store``)."""

    def __init__(self, store: Store, policy: Policy = DEFAULT_POLICY) -> None:
        if store.on_new_rows is not note:
            raise ValueError(
                "the store was not opened by collector.judge.open_store: "
                "the batches it stores would leave nothing for the judge"
            )
        self.store, self.policy = store, policy

    def judge_pending(self, now: datetime.datetime) -> Judged:
        """Judge every pair marked before this call, chunk by chunk; return what was done.

        Each chunk is one transaction: batch after batch, in the order they were stored, each
        batch's looks applied and its pairs weighed on their records since ``now`` minus two
        days (collector/judge/rules.py), as if judged on its own; flags stored, the chunk's
        marks deleted. Pairs marked meanwhile are left to the next call. Judges of one pair
        are serialised across processes; a judge that waited for another skips what that one
        judged.
        """
        upto = self.store.read(pending.latest)
        done = Judged(0, 0, [])
        while upto is not None:
            chunk = self.store.write(
                judgement.judge_chunk, now, upto, judgement.CHUNK_ROWS, self.policy
            )
            done = Judged(
                done.taken + chunk.taken, done.pairs + chunk.pairs, done.opened + chunk.opened
            )
            if chunk.taken < judgement.CHUNK_ROWS:
                break
        return done

    def revoke(self, probe_id: str, now: datetime.datetime) -> int | None:
        """Revoke a probe: its token is refused and its records count in no flag; the pairs
        of the open flags it supports are marked for judgement again (a flag it alone
        supported closes at the next judgement). Return how many pairs, None if no such
        probe."""
        return self.store.write(_revoke, probe_id, now)

    def settle(self, flag: Flag, reached: bool) -> None:
        """Settle a newly opened flag on the collector's own control (``flags.settle``)."""
        self.store.write(flags.settle, flags.flag_id(flag), reached)

    def pending_count(self) -> int:
        """Return how many marks wait for the judge (a pair marked by n batches counts n)."""
        return self.store.read(pending.count)

    def query_flags(self, **chosen: Any) -> list[dict[str, Any]]:
        """Return the flags matching the filters (the keywords of ``flags.query``), latest seen
        first (docs/spec.md shape, plus id, category, closed_at); ``since``/``until`` keep those in
        force during [since, until). Raise ValueError naming a bad filter."""
        return self.store.read(functools.partial(flags.query, **chosen))

    def query_collateral(self, **chosen: Any) -> list[dict[str, Any]]:
        """Return the addresses blocked at the address level, with every service behind each,
        on the networks the filters choose (keywords: ``filters.COLLATERAL_FILTERS``)."""
        return self.store.read(functools.partial(addresses.query_collateral, **chosen))

    def flag_counts(self) -> list[tuple[str | None, str, str, str]]:
        """Return every open flag as (network, service, category, method), for the metrics."""
        return self.store.read(flags.open_series)

    def collateral_counts(self) -> list[tuple[str | None, int, int]]:
        """Return (network, blocked addresses, services behind them) for the metrics."""
        return self.store.read(addresses.collateral_counts)
