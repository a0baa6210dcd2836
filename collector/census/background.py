"""The address judge of one collector process, in the event loop: drains after sweeps, before reads.

A sweep is acknowledged once stored (pending); the judge runs after, in the background. Before a
chunk is judged, the collector's vantage looks again at the addresses it shows blocked whose last
look is older than ``census.vantage_max_age_seconds`` (bounded: collector/census/vantage.py), so
that an address down for everybody is ``down``, never blocked. Every reader of the census drains
first (``drain``), so that a read reflects every sweep acknowledged before it.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable

from collector.census import judgement
from collector.census.vantage import AddressVantage
from collector.judge.background import drain_until
from collector.metrics import Metrics
from collector.store import Store


class AddressJudge:
    """Drains the pending sweeps of one collector process; one pass at a time in it (across
    processes, an advisory lock serialises the judges)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        options: judgement.Options,
        vantage: AddressVantage | None = None,
        vantage_max_age: datetime.timedelta = datetime.timedelta(hours=1),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.metrics, self.options = store, metrics, options
        self.vantage, self.vantage_max_age, self.on_change = vantage, vantage_max_age, on_change
        self._one_pass = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wake.set()  # sweeps left by a stopped process are judged at start

    def wake(self) -> None:
        """Say that a sweep was stored: the background judge drains soon."""
        self._wake.set()

    async def drain(self) -> int:
        """Judge every sweep received before the call; return how many. Raises
        StoreUnavailable (a reader answers 503)."""
        async with self._one_pass:
            now = datetime.datetime.now(datetime.UTC)
            taken = toggled = 0
            while True:
                await self._look(now)
                with self.metrics.time_store("flags"):
                    chunk = await asyncio.to_thread(
                        self.store.write, judgement.judge_chunk, now, now, self.options
                    )
                taken, toggled = taken + chunk.taken, toggled + chunk.toggled
                for flag in chunk.opened:
                    self.metrics.address_flag_opened(flag.network, flag.method)
                if chunk.taken < judgement.CHUNK_SWEEPS:
                    break
            if toggled and self.on_change is not None:  # a flag opened or closed
                self.on_change()
            return taken

    async def _look(self, now: datetime.datetime) -> None:
        """Look again at the next chunk's blocked addresses the vantage has not looked at
        within ``vantage_max_age``."""
        if self.vantage is None:
            return
        allow = self.options.allow_networks
        failing = await asyncio.to_thread(
            self.store.read, judgement.pending_failing, now, judgement.CHUNK_SWEEPS, allow
        )
        if not failing:
            return
        since = now - self.vantage_max_age
        fresh = await asyncio.to_thread(
            self.store.read, judgement.fresh_vantage, sorted(failing), since
        )
        stale = {ip: target for ip, target in failing.items() if ip not in fresh}
        if not stale:
            return
        looked = await self.vantage.look_all(stale)
        at = datetime.datetime.now(datetime.UTC)
        rows = [(look.ip, look.sni, look.failure) for look in looked]
        await asyncio.to_thread(self.store.write, judgement.store_vantage, rows, at)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain after sweeps until ``stop`` is set; a failed pass is logged and tried again."""
        await drain_until(stop, self._wake, self.drain, "judging sweeps failed")
