"""The learning of block signatures in one collector process: after batches, before reads.

Batches hand their rows of positive controls to ``feed`` once stored and acknowledged; the
background loop (background.drain_until) writes them in one transaction a pass, and a reader of
GET /api/v1/signatures drains first, so that it reflects every batch this process acknowledged
before. What is fed is held in memory until drained (at most MAX_PENDING rows, the oldest
dropped past it): a crash between a batch's acknowledgement and the next pass, about a second,
would lose its contribution: so a collector starting learns again from the positive controls
stored in the last REPLAY (learning is idempotent: the same records teach the same thing).

A record's control is the probe's word. With a control vantage (``own_control``: the collector's
own measurement of a positive control, cached as every control is), what the collector itself
resolves replaces the records' controls before anything is learned or retired: a forged control
can neither teach a signature nor retire one. Without a vantage (or when its measurement fails)
the records' controls stand, as for the flags.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from collector.judge import learned
from collector.judge.background import drain_until
from probe import logs
from probe.record import Control, encode

OwnControl = Callable[[str], Awaitable[Control | None]]
"""The collector's own control of a watchlist service (None: it cannot tell)."""

MAX_PENDING = 10_000
REPLAY = datetime.timedelta(hours=6)  # what a start learns again from (longer than a cycle)


class Learner:
    """Feeds stored records of positive controls to collector.judge.learned, in the background."""

    def __init__(
        self, store: Any, controls: Collection[str], own_control: OwnControl | None = None
    ) -> None:
        self.store, self.controls = store, frozenset(controls)
        self.own_control = own_control
        self._pending: collections.deque[learned.Seen] = collections.deque(maxlen=MAX_PENDING)
        self._one_pass = asyncio.Lock()
        self._wake = asyncio.Event()
        self._replayed = False

    def feed(self, rows: Iterable[Any]) -> None:
        """Queue the rows (collector.store.MeasurementRow) of positive controls; wake the loop."""
        fed = [
            learned.Seen(r.id, r.probe_id, r.asn, r.network, r.service, r.started_at, r.doc)
            for r in rows if r.service in self.controls
        ]  # fmt: skip
        if fed:
            if len(self._pending) + len(fed) > MAX_PENDING:
                logs.event("signature learning behind: oldest rows dropped", logging.WARNING)
            self._pending.extend(fed)
            self._wake.set()

    async def drain(self) -> int:
        """Learn from every row fed before the call; return how many signatures were written.

        Raises StoreUnavailable; the rows of a failed pass are fed again first.
        """
        async with self._one_pass:
            if not self._replayed:
                await self._replay()
            batch = list(self._pending)
            self._pending.clear()
            if not batch:
                return 0
            try:
                settled = await self._settled(batch)
                return int(
                    await asyncio.to_thread(self.store.write, learned.learn, settled, self.controls)
                )
            except BaseException:
                self._pending.extendleft(reversed(batch))
                raise

    async def _settled(self, batch: list[learned.Seen]) -> list[learned.Seen]:
        """The batch with the collector's own control in place of each record's, where the
        vantage answers: one measurement a positive control a pass (bounded by the watchlist)."""
        if self.own_control is None:
            return batch
        own: dict[str, dict[str, Any] | None] = {}
        for service in dict.fromkeys(s.service for s in batch):
            control = await self.own_control(service)
            own[service] = encode(control) if control is not None else None
        return [
            s if own[s.service] is None
            else dataclasses.replace(s, doc={**s.doc, "control": own[s.service]})
            for s in batch
        ]  # fmt: skip

    async def read(self, **filters: Any) -> list[dict[str, Any]]:
        """Drain, then return the signatures in force (collector.judge.learned.query)."""
        await self.drain()
        return list(await asyncio.to_thread(self.store.read, _query, filters))

    async def _replay(self) -> None:
        """Queue again the positive controls received in the last REPLAY (what a crash between
        an acknowledgement and a pass left unlearned), once, before the first pass."""
        room = MAX_PENDING - len(self._pending)
        if self.controls and room > 0:  # a failed read raises, and is tried again next pass
            since = datetime.datetime.now(datetime.UTC) - REPLAY
            rows = await asyncio.to_thread(
                self.store.read, learned.recent, self.controls, since, room
            )
            self._pending.extendleft(reversed(rows))
        self._replayed = True

    async def run(self, stop: asyncio.Event) -> None:
        """Drain at start (what was stored lately), then after batches until ``stop``."""
        self._wake.set()
        await drain_until(stop, self._wake, self.drain, "learning block signatures failed")


def _query(conn: Any, filters: dict[str, Any]) -> list[dict[str, Any]]:
    return learned.query(conn, **filters)
