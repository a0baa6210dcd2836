"""Drains the spool into the collector: oldest batches first, backoff with jitter, poison isolated.

A record leaves the spool only once the collector acknowledged its batch. Resubmitting is
harmless (the collector is idempotent by record id), so any doubt (a timeout, a kill -9 between
the collector's commit and ours) means "send again". Refusals are sorted by what can fix them:

- network failures, 429, other surprises: try again later, after an exponential backoff with
  jitter (reset by the first success);
- any other 4xx, or a 5xx: a record may be at fault (or the batch is too big). The batch is
  halved until the record at fault is alone (and grows back, doubling, with each success). A
  record refused alone is set aside (a suspect) while the records after it are sent: when the
  collector takes them, the refusal counts against each suspect (a strike); a second record
  refused alone in a row means a backoff first (the collector may be failing for everyone, and
  then nothing it takes later will count for long: a record it takes loses its strikes). A
  record refused ``quarantine_after`` times in a row with the same status is quarantined (moved
  aside, kept, counted, sent again by the next version of the probe), so the rest moves;
- sweep documents (the census) leave after the records, at most ten a request, sorted the same
  way; a sweep refused alone for good is dropped and counted (it is one cycle's look at some
  addresses, which the next cycle renews), not quarantined;
- 401 (the collector does not know our token) or a refused registration: retrying will not help
  and re-registering on our own could hide a collector that lost its database, so the records
  stay in the spool, an error is logged at every attempt (at the longest interval) and the
  operator acts (`surblocage-probe register --force`, or an enrollment key).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.client import (
    SWEEPS_PER_REQUEST,
    CollectorClient,
    CollectorRefused,
    CollectorUnavailable,
)
from probe.daemon import identity
from probe.daemon.spool import Spool, Spooled

QUARANTINE_AFTER = 5
LOG = logging.getLogger("surblocage.probe.delivery")


class OperatorMustAct(Exception):
    """The collector refuses this probe itself (unknown token, closed registration)."""


@dataclass
class Backoff:
    """Exponential backoff with jitter: base, 2x base, ... up to ``cap_seconds``; reset on success.

    Half of each delay is fixed and half random, so that probes cut off together (a collector
    restart) do not all come back in the same second.
    """

    base_seconds: float = 5.0
    cap_seconds: float = 900.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    failures: int = 0

    def failed(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        self.failures += 1
        delay = min(self.cap_seconds, self.base_seconds * 2 ** min(self.failures - 1, 30))
        return delay / 2 + delay / 2 * self.rand()

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class Enrollment:
    """What registration needs: where to keep the identity, and what the probe declares."""

    state_dir: Path
    collector: str
    asn: int | None = None
    network: str | None = None
    key: str | None = None


async def register(client: CollectorClient, e: Enrollment) -> identity.Identity:
    """Register with the collector and keep the new identity in the state dir."""
    try:
        issued = await client.register(e.asn, e.network, e.key)
    except CollectorRefused as refused:
        raise OperatorMustAct(f"registration refused ({refused})") from None
    ident = identity.save_identity(
        e.state_dir, issued.probe_id, issued.token, e.collector, issued.expires_at
    )
    _log(logging.INFO, "registered", probe_id=issued.probe_id, collector=e.collector)
    return ident


async def renewed(
    client: CollectorClient, state_dir: Path, ident: identity.Identity
) -> identity.Identity:
    """Renew the identity's token and keep the new one; on a failure, log it and keep the old
    (half its life is left for the next tries)."""
    try:
        issued = await client.renew(ident.probe_id, ident.token)
    except (CollectorUnavailable, CollectorRefused) as e:
        _log(logging.WARNING, "token renewal failed", why=str(e), expires=ident.token_expires_at)
        return ident
    ident = identity.save_renewed(state_dir, ident, issued.token, issued.expires_at)
    _log(logging.INFO, "token renewed", probe_id=ident.probe_id, expires=ident.token_expires_at)
    return ident


class Delivery:
    """Moves records from the spool to the collector, registering first when needed."""

    def __init__(
        self,
        spool: Spool,
        client: CollectorClient,
        enrollment: Enrollment,
        ident: identity.Identity | None = None,
        batch_size: int = 100,
        backoff: Backoff | None = None,
        quarantine_after: int = QUARANTINE_AFTER,
    ) -> None:
        self.spool, self.client, self.enrollment = spool, client, enrollment
        self.identity = ident
        if ident is not None:
            client.use_token(ident.token, ident.collector)
        self.batch_size = self.limit = batch_size
        self.backoff = backoff or Backoff()
        self.quarantine_after = quarantine_after
        # records refused alone -> (status, why): kept aside until the collector takes another
        # record, which says the refusal was about them and not about the collector's health
        self.suspects: dict[str, tuple[int, str]] = {}
        self.sweep_limit = SWEEPS_PER_REQUEST

    async def _identity(self) -> identity.Identity:
        if self.identity is None:
            self.identity = await register(self.client, self.enrollment)
            self.client.use_token(self.identity.token, self.identity.collector)
        if self.identity.needs_renewal(datetime.datetime.now(datetime.UTC)):
            self.identity = await renewed(self.client, self.enrollment.state_dir, self.identity)
            self.client.use_token(self.identity.token, self.identity.collector)
        return self.identity

    async def upload_once(self) -> int:
        """Submit the oldest batch; return how many records it delivered (0 while isolating)."""
        batch = self._next_batch()
        if not batch:
            return 0
        ident = await self._identity()
        records = [_as_submitted(s, ident.probe_id) for s in batch]
        try:
            ack = await self.client.submit(ident.token, records)
        except CollectorRefused as e:
            if e.status == 401:
                raise OperatorMustAct(
                    f"the collector refuses our token ({e.why}); records stay spooled: "
                    "run `surblocage-probe register --force` if the collector was reset"
                ) from None
            self._isolate(batch, e.status, str(e))
            return 0
        except CollectorUnavailable as e:
            if e.status is None or e.status < 500:
                raise
            self._isolate(batch, e.status, str(e))
            return 0
        self.spool.acknowledge([s.id for s in batch])
        _log(
            logging.INFO,
            "batch delivered",
            records=len(batch),
            inserted=ack.inserted,
            duplicates=ack.duplicates,
            spooled=self.spool.depth(),
        )
        self.limit = min(self.batch_size, self.limit * 2)
        self._convict()
        return len(batch)

    def _next_batch(self) -> list[Spooled]:
        """The oldest records but the suspects; a record refused before goes alone."""
        batch = self.spool.peek(self.limit, skip=tuple(self.suspects))
        if not batch and self.suspects:
            self.suspects.clear()  # nothing else to compare them with: retry after a backoff
            raise CollectorUnavailable("only records the collector refused are left")
        if batch and self.spool.strikes(batch[0].id):
            return batch[:1]
        return batch

    def _isolate(self, batch: list[Spooled], status: int, why: str) -> None:
        """Halve a refused batch; set a record refused alone aside, as a suspect."""
        if len(batch) > 1:
            self.limit = max(1, len(batch) // 2)
            _log(logging.DEBUG, "batch refused, halving it", records=len(batch), why=why)
            return
        self.suspects[batch[0].id] = (status, why)
        self.limit = self.batch_size
        _log(logging.WARNING, "record refused, set aside", id=batch[0].id, why=why)
        if len(self.suspects) > 1:  # refused alone twice in a row: maybe every record is
            raise CollectorUnavailable(f"records refused one after the other ({why})", status)

    def _convict(self) -> None:
        """The collector took other records: count a strike against each suspect."""
        for record_id, (status, why) in self.suspects.items():
            strikes = self.spool.strike(record_id, status)
            if strikes >= self.quarantine_after:
                self.spool.quarantine([record_id], why)
                _log(logging.ERROR, "record quarantined", id=record_id, why=why, times=strikes)
        self.suspects.clear()

    async def upload_sweeps_once(self) -> int:
        """Submit the oldest sweep documents; return how many were delivered.

        A refused request is halved down to one document; one refused alone (a 4xx other than
        401) is dropped and counted; 5xx and network failures raise for a backoff.
        """
        batch = self.spool.peek_sweeps(self.sweep_limit)
        if not batch:
            return 0
        ident = await self._identity()
        docs = [_as_submitted(s, ident.probe_id) for s in batch]
        try:
            ack = await self.client.submit_sweeps(ident.token, docs)
        except CollectorRefused as e:
            if e.status == 401:
                raise OperatorMustAct(f"the collector refuses our token ({e.why})") from None
            if len(batch) > 1:
                self.sweep_limit = max(1, len(batch) // 2)
                return 0
            self.spool.refuse_sweep(batch[0].id)
            _log(logging.ERROR, "sweep refused, dropped", id=batch[0].id, why=str(e))
            return 0
        self.spool.acknowledge_sweeps([s.id for s in batch])
        _log(logging.INFO, "sweeps delivered", sweeps=len(batch), inserted=ack.inserted)
        self.sweep_limit = min(SWEEPS_PER_REQUEST, self.sweep_limit * 2)
        return len(batch)

    def waiting(self) -> int:
        """Return how many records and sweep documents wait in the spool."""
        return self.spool.depth() + self.spool.sweep_depth()

    async def drain(self) -> None:
        """Upload until the spool is empty; raise on the first failure that needs a wait."""
        while self.spool.depth():
            await self.upload_once()
        while self.spool.sweep_depth():
            await self.upload_sweeps_once()
        self.backoff.succeeded()

    async def try_register(self) -> None:
        """Register now if the probe has no identity yet (first run); log a failure, no more."""
        try:
            await self._identity()
        except (CollectorUnavailable, OperatorMustAct) as e:
            _log(logging.WARNING, "not registered yet", why=str(e))

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Upload whenever records wait, backing off after failures, until ``stop`` is set."""
        while not stop.is_set():
            wake.clear()
            if not self.waiting():
                await _either(stop, wake)
                continue
            try:
                await self.drain()
                continue
            except OperatorMustAct as e:
                delay = self.backoff.cap_seconds
                _log(logging.ERROR, "upload impossible", why=str(e), retry_in_seconds=delay)
            except CollectorUnavailable as e:
                delay = self.backoff.failed()
                fields = {"why": e.why, "retry_in_seconds": round(delay, 1)}
                _log(logging.WARNING, "upload failed", **fields, spooled=self.spool.depth())
            await sleep_unless(stop, delay)


def _as_submitted(s: Spooled, probe_id: str) -> dict[str, Any]:
    """The record as submitted: the probe id is this probe's current one (records measured
    before the first registration, or before `register --force`, carry none or an old one)."""
    doc = json.loads(s.body)
    doc["probe"]["id"] = probe_id
    return dict(doc)


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def _log(level: int, msg: str, **fields: Any) -> None:
    LOG.log(level, msg, extra={"fields": fields})
