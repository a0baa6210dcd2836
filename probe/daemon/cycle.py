"""One cycle: the watchlist of the moment, and measuring it within the cycle's budgets.

The watchlist is refreshed from the collector each cycle and cached in the state dir (used when
the collector is away), or read from a file. Targets are measured at most ``concurrency`` at once;
once the bytes spent (estimated, see `estimated_bytes`) pass the budget, no new target starts
and the rest are counted as skipped. Each record is committed to the spool the moment it is
judged, so a stop or a crash loses only the targets in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import learned, logs, watchlist
from probe.client import CollectorClient, CollectorRefused, CollectorUnavailable
from probe.costs import DNS_BYTES, HTTP_BYTES, TCP_BYTES, TLS_BYTES
from probe.daemon import identity
from probe.daemon.spool import Spool, SpoolFull
from probe.record import Measurement, Target
from probe.runner import Runner, TargetSkipped

WATCHLIST_CACHE = "watchlist.json"


def estimated_bytes(m: Measurement) -> int:
    """Approximate the bytes measuring ``m`` moved on the volunteer's line."""
    total = DNS_BYTES * len(m.dns) + TCP_BYTES * len(m.tcp) + TLS_BYTES * len(m.tls)
    # a DoT or DoH query opens a connection of its own, with its handshake
    total += (TCP_BYTES + TLS_BYTES) * sum(r.transport in ("dot", "doh") for r in m.dns)
    if m.http is not None:
        total += HTTP_BYTES * (1 + len(m.http.redirects)) + (m.http.body_length or 0)
    return total


@dataclass
class CycleReport:
    """What one cycle did; the heartbeat carries the last one for `status`."""

    started_at: str
    targets: int = 0
    measured: int = 0
    blocked: int = 0
    skipped_budget: int = 0
    bytes_estimated: int = 0
    dropped: int = 0
    not_stored: int = 0  # measured, but a full disk kept them out of the spool
    watchlist: str = ""
    outcome: str = "running"  # done, abandoned (past its deadline), interrupted, no_watchlist
    sweep: str = "off"  # the census sweep's outcome (probe/daemon/sweeping.py), or off
    finished_at: str | None = None


class WatchlistSource:
    """The watchlist of each cycle: a file, or the collector's (cached for when it is away)."""

    def __init__(
        self,
        spec: str,
        state_dir: Path,
        client: CollectorClient | None,
        allow_networks: Sequence[Any] = (),
        asn: int | None = None,
    ) -> None:
        self.spec, self.client, self.allow = spec, client, tuple(allow_networks)
        self.state_dir, self.asn = state_dir, asn  # asn: the declared network (network.asn)
        self.cache = state_dir / WATCHLIST_CACHE
        self.last: tuple[watchlist.Watchlist, str] | None = None
        self._why: str | None = None  # why the last refresh failed: said once, not every cycle
        self._signatures_why: str | None = None

    async def get(self) -> tuple[watchlist.Watchlist | None, str]:
        """Return this cycle's watchlist and where it came from (None: nothing to measure)."""
        try:
            if self.spec != "collector":
                self.last = (watchlist.load_watchlist(self.spec, self.allow), self.spec)
            else:
                self.last = (await self._from_collector(), "collector")
            self._why = None
        except (CollectorUnavailable, CollectorRefused, watchlist.WatchlistError) as e:
            # a collector that keeps answering the same (a 404: it serves no watchlist) is said
            # once at warning, then at debug until the answer changes
            level = logging.DEBUG if str(e) == self._why else logging.WARNING
            self._why = str(e)
            logs.event("watchlist not refreshed", level, why=str(e))
            if self.last is None and self.spec == "collector":
                self.last = self._from_cache()
        if self.client is not None and self.client.base_url is not None:
            await self._refresh_signatures()
        return self.last if self.last else (None, "")

    async def _refresh_signatures(self) -> None:
        """Fetch the collector's learned signatures with the watchlist and keep them for
        `check` (probe/learned.py). A failure keeps the last ones; a 404 (a collector older
        than them) means none. Either is said once, not every cycle."""
        assert self.client is not None
        why: str | None = None
        try:
            doc = await self.client.signatures()
            items = learned.parse(doc) if doc is not None else []
            asn = self.asn
            if asn is None:  # the network the collector records for this line, if it knows
                try:
                    asn = (await self.client.whoami())[0]
                except (CollectorUnavailable, CollectorRefused):
                    asn = None
            learned.save(self.state_dir, items, asn)
            if doc is None:
                why = "the collector serves no learned signatures (HTTP 404)"
        except (CollectorUnavailable, CollectorRefused, learned.SignaturesMalformed) as e:
            why = str(e)
        except OSError as e:
            why = f"not written: {e.strerror}"
        if why is not None and why != self._signatures_why:
            logs.event("learned signatures not refreshed", logging.INFO, why=why)
        self._signatures_why = why

    async def _from_collector(self) -> watchlist.Watchlist:
        assert self.client is not None and self.client.base_url is not None
        doc = await self.client.watchlist()
        source = self.client.base_url + "/api/v1/watchlist"
        wl = watchlist.parse_watchlist(doc, source, self.allow)
        try:
            identity.write_private(self.cache, identity.json_bytes(watchlist.watchlist_to_dict(wl)))
        except OSError as e:  # a full disk must not stop the measurements
            logs.event("watchlist cache not written", logging.WARNING, why=e.strerror)
        return wl

    def _from_cache(self) -> tuple[watchlist.Watchlist, str] | None:
        try:
            doc = identity.read_json(self.cache)
            if doc is None:
                return None
            return watchlist.parse_watchlist(doc, str(self.cache), self.allow), "cache"
        except (identity.StateError, watchlist.WatchlistError) as e:
            logs.event("watchlist cache unusable", logging.WARNING, why=str(e))
            return None


@dataclass
class Cycle:
    """One pass over the targets: budgets enforced, every record spooled as soon as judged."""

    runner: Runner
    spool: Spool
    budget_bytes: int
    on_record: Callable[[Measurement], None] | None = None

    async def run(
        self, targets: Sequence[Target], dns_only: frozenset[str], report: CycleReport
    ) -> None:
        """Judge the targets through the runner, keeping each record; skip past the budget."""
        report.targets = len(targets)
        await self.runner.learn_whoami()  # once a cycle: the line's resolver may change
        gate = _BudgetGate(asyncio.Semaphore(self.runner.concurrency), self.budget_bytes, report)
        await self.runner.each(targets, dns_only, lambda _, m: self._keep(m, report), gate)

    def _keep(self, m: Measurement, report: CycleReport) -> None:
        report.measured += 1
        try:
            full, old = self.spool.add(m)  # synchronous: a cancellation cannot cut it in half
        except SpoolFull as e:  # measuring goes on: the space may come back, uploads free none
            report.not_stored += 1
            logs.event("record not stored", logging.ERROR, id=m.id, why=str(e))
            return
        report.bytes_estimated += estimated_bytes(m)
        status = m.verdict.status if m.verdict else None
        report.blocked += status == "blocked"
        logs.event(
            "record spooled", logging.DEBUG, id=m.id, service=m.target.service, status=status
        )
        if full or old:
            report.dropped += full + old
            logs.event(
                "spool full: oldest records dropped",
                logging.WARNING,
                dropped_full=full,
                dropped_old=old,
            )
        if self.on_record is not None:
            self.on_record(m)


class _BudgetGate:
    """The concurrency slot of one target, refused once the cycle's bytes are spent.

    Checked when a slot is granted, so no target starts past the budget (a refused one is
    counted as skipped); the slot is held while the target uses the network, not during the
    passive end of its DNS listens (Flow.measure).
    """

    def __init__(self, sem: asyncio.Semaphore, budget_bytes: int, report: CycleReport) -> None:
        self.sem, self.budget_bytes, self.report = sem, budget_bytes, report

    async def __aenter__(self) -> None:
        await self.sem.acquire()
        if self.report.bytes_estimated >= self.budget_bytes:
            self.sem.release()
            self.report.skipped_budget += 1
            raise TargetSkipped

    async def __aexit__(self, *exc: object) -> None:
        self.sem.release()
