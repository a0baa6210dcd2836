"""The daemon loop: cycles on a schedule with jitter, uploads meanwhile, beats, stops cleanly.

The interval is the schedule's, shorter inside busy windows (and a window about to open wakes
the probe at its opening). A cycle past its deadline is abandoned and logged, and the loop goes
on. A heartbeat file in the state dir tells `status` what the daemon does; a watchdog thread
exits the process (systemd restarts it) if the event loop itself stops turning. On SIGTERM or
SIGINT the cycle in flight is cancelled: its finished records are already in the spool, the
targets in flight are dropped whole, nothing is half-written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import errno
import logging
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import logs
from probe.config import ScheduleConfig
from probe.daemon import identity, textfile
from probe.daemon.cycle import Cycle, CycleReport, WatchlistSource
from probe.daemon.delivery import Delivery, sleep_unless
from probe.daemon.spool import Spool
from probe.daemon.sweeping import SweepReport, SweepStage
from probe.record import Measurement, ProbeInfo
from probe.runner import Runner
from probe.sweep import Entry
from probe.times import rfc3339

HEARTBEAT_FILE = "heartbeat.json"
BEAT_SECONDS = 60.0
STALL_SECONDS = 600.0  # the event loop has not turned for this long: it is stuck
CONTROL_SECONDS = 60.0  # the collector client's timeout for one control request


def next_delay(
    schedule: ScheduleConfig, now: datetime.datetime, rand: Callable[[], float] = random.random
) -> float:
    """Return the seconds from ``now`` to the next cycle's start, jitter included.

    A busy window that opens before the usual interval ends wakes the probe at its opening:
    real-time blocking starts minutes before kick-off, an hour's sleep would miss it.
    """
    interval = schedule.interval_at(now)
    if not any(w.covers(now) for w in schedule.busy_windows):
        for step in range(60, int(interval), 60):
            when = now + datetime.timedelta(seconds=step)
            if any(w.covers(when) for w in schedule.busy_windows):
                interval = float(step)
                break
    return interval + min(schedule.jitter_seconds, interval / 2) * rand()


def cycle_deadline(targets: int, concurrency: int, target_timeout_seconds: float) -> float:
    """Return how long a cycle may take when every step keeps its timeout, plus a margin."""
    rounds = math.ceil(targets / max(concurrency, 1))
    return rounds * (target_timeout_seconds + CONTROL_SECONDS) + 60.0


class Heartbeat:
    """The heartbeat file `status` reads: the daemon's state, its last cycle, its spool."""

    def __init__(
        self, path: Path, spool: Spool, about: dict[str, Any], textfile: Path | None = None
    ) -> None:
        self.path, self.spool, self.about = path, spool, about
        self.textfile = textfile  # the metrics for node_exporter (probe/daemon/textfile.py)
        self.last_cycle: CycleReport | None = None
        self.last_sweep: SweepReport | None = None  # the last cycle's sweep that ran
        self.state = "starting"
        self.next_cycle_at: str | None = None

    def write(self, state: str | None = None, next_cycle_at: str | None = None) -> None:
        self.state = state or self.state
        self.next_cycle_at = next_cycle_at if state else self.next_cycle_at
        doc = {
            "pid": os.getpid(),
            "state": self.state,
            "beat_at": rfc3339(time.time(), "seconds"),
            "next_cycle_at": self.next_cycle_at,
            "last_cycle": dataclasses.asdict(self.last_cycle) if self.last_cycle else None,
            "last_sweep": dataclasses.asdict(self.last_sweep) if self.last_sweep else None,
            "spool": dataclasses.asdict(self.spool.stats()),
            **self.about,
        }
        data = identity.json_bytes(doc)
        if self.textfile is not None:
            try:
                textfile.write(self.textfile, doc)
            except OSError as e:
                logs.event("metrics file not written", logging.WARNING, why=e.strerror)
        try:
            identity.write_private(self.path, data)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            try:
                _overwrite(self.path, data)
            except OSError as again:  # no heartbeat beats a daemon stopped by a full disk
                logs.event("heartbeat not written", logging.WARNING, why=again.strerror)


def _overwrite(path: Path, data: bytes) -> None:
    """Write ``data`` over the file in place: on a full disk, its own blocks are all there is.

    Not atomic (a reader may catch it half-written), which `status` survives: it is only for
    when the atomic way cannot be had. The heartbeat is far smaller than one block.
    """
    with path.open("r+b") as f:  # FileNotFoundError when there is none yet: nothing to reuse
        f.write(data)
        f.truncate()


class Watchdog:
    """A thread that calls ``on_stall`` when the event loop has not beaten for ``limit_seconds``.

    asyncio timeouts cannot cut a loop blocked in a synchronous call; only another thread sees it.
    """

    def __init__(self, limit_seconds: float, on_stall: Callable[[], None] | None = None) -> None:
        self.limit = limit_seconds
        self.on_stall = on_stall or _exit_stalled
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self.limit / 4):
            if time.monotonic() - self._last > self.limit:
                self.on_stall()
                return


def _exit_stalled() -> None:
    logs.event("event loop stalled: exiting for a restart", logging.CRITICAL)
    os._exit(1)  # the spool is consistent at every commit; systemd restarts us (on-failure)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Daemon:
    """The probe between start and stop: cycles, uploads (through ``delivery``) and heartbeats."""

    runner: Runner
    spool: Spool
    watchlists: WatchlistSource
    heartbeat: Heartbeat
    schedule: ScheduleConfig
    budget_bytes: int
    target_timeout_seconds: float
    delivery: Delivery | None = None
    deadline_seconds: float | None = None  # None: `cycle_deadline` of the watchlist's size
    sweeps: SweepStage | None = None  # None: no census sweep (census.enabled false, --no-sweep)
    now: Callable[[], datetime.datetime] = _now
    rand: Callable[[], float] = random.random

    async def run(self, stop: asyncio.Event, watchdog: Watchdog | None = None) -> None:
        """Cycle until ``stop`` is set, the delivery draining the spool meanwhile."""
        wake = asyncio.Event()
        background = [asyncio.create_task(self._beat(stop, watchdog))]
        if self.delivery is not None:
            await until_stopped(self.delivery.try_register(), stop)
            background.append(asyncio.create_task(self.delivery.run(stop, wake)))
        try:
            while not stop.is_set():
                delay = next_delay(self.schedule, self.now(), self.rand)
                t0 = time.monotonic()
                if not await until_stopped(self.cycle(on_record=lambda m: wake.set()), stop):
                    break
                wake.set()  # the sweep's documents, spooled at the cycle's end
                wait = max(0.0, delay - (time.monotonic() - t0))
                self.heartbeat.write("idle", rfc3339(time.time() + wait, "seconds"))
                logs.event("sleeping until the next cycle", seconds=round(wait, 1))
                await sleep_unless(stop, wait)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.heartbeat.write("stopped")

    async def cycle(
        self,
        on_record: Callable[[Measurement], None] | None = None,
        on_targets: Callable[[int], None] | None = None,
        on_sweep: Callable[[int], None] | None = None,
        on_entry: Callable[[Entry], None] | None = None,
    ) -> CycleReport:
        """Measure the watchlist once, every record into the spool, then sweep the census's
        addresses (when on), the documents into the spool; return what was done."""
        report = CycleReport(started_at=rfc3339(time.time(), "seconds"))
        self.heartbeat.last_cycle = report
        self.heartbeat.write("measuring")
        t0 = time.monotonic()
        try:
            await self._measure(report, on_record, on_targets)
            if self.sweeps is not None:
                await self._sweep(report, t0, on_sweep, on_entry)
        except TimeoutError:
            report.outcome = "abandoned"
            logs.event("cycle abandoned: past its deadline", logging.ERROR)
        finally:
            report.outcome = "interrupted" if report.outcome == "running" else report.outcome
            report.finished_at = rfc3339(time.time(), "seconds")
            self.spool.prune()
            self.heartbeat.write("idle")
            logs.event("cycle " + report.outcome, **dataclasses.asdict(report))
        return report

    async def _measure(
        self,
        report: CycleReport,
        on_record: Callable[[Measurement], None] | None,
        on_targets: Callable[[int], None] | None,
    ) -> None:
        wl, report.watchlist = await self.watchlists.get()
        if wl is None:
            report.outcome = "no_watchlist"
            return
        targets = wl.targets()
        if on_targets is not None:
            on_targets(len(targets))
        runner = dataclasses.replace(self.runner, probe=self.probe())
        deadline = self.deadline_seconds or cycle_deadline(
            len(targets), runner.concurrency, self.target_timeout_seconds
        )
        dns_only = frozenset(s.id for s in wl.services if s.dns_only)
        async with asyncio.timeout(deadline):
            cycle = Cycle(runner, self.spool, self.budget_bytes, on_record)
            await cycle.run(targets, dns_only, report)
        report.outcome = "done"

    async def _sweep(
        self,
        report: CycleReport,
        t0: float,
        on_sweep: Callable[[int], None] | None,
        on_entry: Callable[[Entry], None] | None,
    ) -> None:
        """Sweep within what the watchlist left of the cycle's bytes and (when set) deadline."""
        assert self.sweeps is not None
        deadline = None
        if self.deadline_seconds is not None:
            c = self.sweeps.census
            slowest = c.tcp_timeout_seconds + 2 * c.tls_timeout_seconds
            deadline = self.deadline_seconds - (time.monotonic() - t0) - slowest
        self.heartbeat.write("sweeping")
        budget = max(0, self.budget_bytes - report.bytes_estimated)
        swept = await self.sweeps.run(self.probe(), budget, deadline, on_sweep, on_entry)
        report.sweep = swept.outcome
        report.bytes_estimated += swept.bytes_estimated
        if swept.outcome in ("done", "not_stored"):
            self.heartbeat.last_sweep = swept
        logs.event("sweep " + swept.outcome, **dataclasses.asdict(swept))

    def probe(self) -> ProbeInfo:
        """The probe block of this cycle's records: the base one with the current probe id."""
        ident = self.delivery.identity if self.delivery is not None else None
        return dataclasses.replace(self.runner.probe, id=ident.probe_id if ident else None)

    async def _beat(self, stop: asyncio.Event, watchdog: Watchdog | None) -> None:
        while not stop.is_set():
            if watchdog is not None:
                watchdog.beat()
            self.heartbeat.write()
            await sleep_unless(stop, BEAT_SECONDS)


async def until_stopped(aw: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await ``aw`` unless ``stop`` is set first (then cancel it); tell whether it finished."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # an exception of the awaited work is raised here
    return True
