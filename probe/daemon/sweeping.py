"""The cycle's census sweep: after the watchlist, the collector's addresses swept and spooled.

The sweep documents of a cycle are committed to the spool together, once the sweep is over
(the spool's ``sweeps`` table), and leave through the delivery as records do: a stop or a crash
during the sweep loses that sweep only, never a document already committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from probe import logs, sweep
from probe.address_list import MalformedList
from probe.census import Census
from probe.client import CollectorClient, CollectorRefused, CollectorUnavailable
from probe.daemon.spool import Spool, SpoolFull
from probe.record import ProbeInfo
from probe.times import rfc3339


@dataclass
class SweepReport:
    """What one cycle's sweep did; `status` shows the last one."""

    at: str
    outcome: str = "running"  # done, not_published, unavailable, no_time, not_stored
    addresses: int = 0  # swept
    failures: int = 0  # entries with a TCP or TLS failure
    skipped_budget: int = 0
    skipped_deadline: int = 0
    left_out: int = 0  # published but malformed, not public, or past census.max_addresses
    documents: int = 0
    bytes_estimated: int = 0


@dataclass
class SweepStage:
    """The sweep of each cycle, when the census is on and the collector publishes addresses."""

    census: Census
    client: CollectorClient
    spool: Spool

    async def run(
        self,
        probe: ProbeInfo,
        budget_bytes: int,
        deadline_seconds: float | None,
        on_start: Callable[[int], None] | None = None,
        on_entry: Callable[[sweep.Entry], None] | None = None,
    ) -> SweepReport:
        """Fetch the list, sweep it within the budget and the deadline, spool the documents."""
        report = SweepReport(at=rfc3339(time.time(), "seconds"))
        try:
            targets = await self.census.fetch(self.client)
        except (CollectorUnavailable, CollectorRefused, MalformedList) as e:
            logs.event("no sweep: address list unavailable", logging.WARNING, why=str(e))
            report.outcome = "unavailable"
            return report
        if targets is None:
            report.outcome = "not_published"
            return report
        report.left_out = targets.malformed + targets.not_public + targets.beyond_cap
        if deadline_seconds is not None and deadline_seconds <= 0:
            report.outcome = "no_time"
            return report
        if on_start is not None:
            on_start(len(targets.addresses))
        result = await self.census.run(targets, budget_bytes, deadline_seconds, on_entry)
        report.addresses, report.failures = len(result.entries), result.failures()
        report.skipped_budget, report.skipped_deadline = (
            result.skipped_budget,
            result.skipped_deadline,
        )
        report.bytes_estimated = result.bytes_estimated
        report.outcome = self._keep(sweep.documents(result, probe), report)
        return report

    def _keep(self, docs: list[dict[str, object]], report: SweepReport) -> str:
        try:
            dropped = self.spool.add_sweeps([(str(d["id"]), json.dumps(d)) for d in docs])
        except SpoolFull as e:
            logs.event("sweep not stored", logging.ERROR, why=str(e))
            return "not_stored"
        report.documents = len(docs)
        if dropped:
            logs.event("spool full: oldest sweeps dropped", logging.WARNING, dropped=dropped)
        return "done"
