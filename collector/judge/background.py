"""The judge of one collector process, in the event loop: drains after batches and before reads.

It also sets the gauges the findings drive, between the findings (collector/judge/findings.py,
in worker threads) and the metrics (in the event loop). A batch is acknowledged once stored (its
pairs marked in the same transaction); the judge runs after, in the background, many batches at
once; and every reader of flags or collateral drains first, so that docs/spec.md's "reflects every
batch acknowledged before the request" holds, across processes too (the marks are in the shared
database).

A flag the judge opens is settled on the collector's own control before it counts as opened
(``verify``, given by the app: the control vantage, cached): the probes' controls are the
probes' word, and a hostile probe can forge them. Reached, the flag rests on the collector's
control; not reached, it is withdrawn; no vantage or no URL for the service, it stays open on
the probes' controls (``control: "probe"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from collector.judge.findings import Findings
from collector.judge.rules import Flag
from collector.metrics import Metrics
from collector.store import StoreUnavailable
from collector.store.schema import ISP
from probe import logs

# The background judge waits this long after a pass before the next: the batches stored
# meanwhile are judged together (a pass costs about the same for one batch or fifty).
JUDGE_PAUSE_SECONDS = 1.0
# After a failed pass (the database unavailable): the marks stay, the judge tries again.
JUDGE_RETRY_SECONDS = 5.0

Verify = Callable[[str], Awaitable[bool | None]]
"""service id -> the collector's own control reached it (True), did not (False), or cannot
tell (None: no control vantage, no URL for the service, the measurement failed)."""


class Judge:
    """Drains the pending pairs of one collector process: in the background after batches,
    and for a reader before it reads. One pass at a time in this process (across processes,
    the judgement serialises judges of a pair)."""

    def __init__(self, findings: Findings, metrics: Metrics, verify: Verify | None = None) -> None:
        self.findings, self.metrics, self.verify = findings, metrics, verify
        self._one_pass = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wake.set()  # marks left by a stopped or crashed process are judged at start

    def wake(self) -> None:
        """Say that a batch was stored: the background judge drains soon."""
        self._wake.set()

    async def drain(self) -> int:
        """Judge every pair marked before the call; return how many pairs were judged.

        Raises StoreUnavailable (a reader answers 503). Counts the flags it opened and, when it
        judged anything, sets the flag and collateral gauges.
        """
        async with self._one_pass:
            now = datetime.datetime.now(datetime.UTC)
            with self.metrics.time_store("flags"):
                judged = await asyncio.to_thread(self.findings.judge_pending, now)
            for flag in await self._settled(judged.opened):
                if flag.resolver == ISP:  # the metrics say what networks block (open_series)
                    self.metrics.flag_opened(flag.network, flag.method)
            if judged.pairs:
                series, collateral = await asyncio.to_thread(_findings_snapshot, self.findings)
                self.metrics.set_flags(series)
                self.metrics.set_collateral(collateral)
            return int(judged.pairs)

    async def _settled(self, opened: Sequence[Flag]) -> list[Flag]:
        """Settle the flags just opened on the collector's control; return those that stay
        opened (a flag opened and closed in one pass is not measured again)."""
        if self.verify is None:
            return list(opened)
        kept, reached_of = [], {}
        for flag in opened:
            if flag.state == "open":
                if flag.service not in reached_of:
                    reached_of[flag.service] = await self.verify(flag.service)
                reached = reached_of[flag.service]
                if reached is not None:
                    await asyncio.to_thread(self.findings.settle, flag, reached)
                if reached is False:
                    continue
            kept.append(flag)
        return kept

    async def run(self, stop: asyncio.Event) -> None:
        """Drain after batches until ``stop`` is set; a failed pass is logged and tried again."""
        await drain_until(stop, self._wake, self.drain, "judging flags failed")


async def drain_until(
    stop: asyncio.Event,
    wake: asyncio.Event,
    drain: Callable[[], Awaitable[Any]],
    failed: str,
) -> None:
    """The loop of a background judge: ``drain`` each time ``wake`` is set, then pause, until
    ``stop``; a pass the database fails is logged (``failed``) and tried again after a while."""
    while not stop.is_set():
        await _first_of(wake, stop)
        if stop.is_set():
            return
        wake.clear()
        try:
            await drain()
        except StoreUnavailable as e:
            logs.event(
                f"{failed}: the database is unavailable; trying again",
                logging.WARNING, error=str(e),
            )  # fmt: skip
            wake.set()
            await _first_of(stop, timeout_seconds=JUDGE_RETRY_SECONDS)
            continue
        await _first_of(stop, timeout_seconds=JUDGE_PAUSE_SECONDS)


async def _first_of(*events: asyncio.Event, timeout_seconds: float | None = None) -> None:
    """Wait until one of ``events`` is set, or the timeout passes."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def refresh_metrics(
    findings: Findings, metrics: Metrics, silent_after_seconds: float, judge: Judge | None = None
) -> None:
    """Set every gauge the store decides: probes live/silent, last seen, flags, collateral.

    For a periodic job: gauges stay right when no batch arrives (a probe falls silent) and
    when another collector process shares the database. ``judge`` drains first, when given.
    """
    if judge is not None:
        await judge.drain()
    now = datetime.datetime.now(datetime.UTC)
    probes, last_seen = await asyncio.to_thread(
        _probes_snapshot, findings, silent_after_seconds, now
    )
    series, collateral = await asyncio.to_thread(_findings_snapshot, findings)
    metrics.set_probes(probes)
    metrics.set_network_last_seen(last_seen)
    metrics.set_flags(series)
    metrics.set_collateral(collateral)


def _findings_snapshot(findings: Findings) -> tuple[list[Any], list[Any]]:
    return findings.flag_counts(), findings.collateral_counts()


def _probes_snapshot(
    findings: Findings, silent_after_seconds: float, now: datetime.datetime
) -> tuple[list[Any], list[Any]]:
    store = findings.store
    return store.probe_counts(silent_after_seconds, now), store.network_last_seen()
