"""Keeps findings current: the store's flag update after each batch, and the metrics derived.

Between the store (persistence, in worker threads) and the metrics (in the event loop). The
rules themselves are collector.analysis's, applied by ``Store.update_findings``.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from typing import Any

from collector.metrics import Metrics
from collector.store import MeasurementRow, Store


async def after_batch(
    store: Store, rows: Sequence[MeasurementRow], outcome: Any, metrics: Metrics
) -> None:
    """Update flags and collateral for a committed batch, then the metrics; before the ack.

    Every row counts, not only ``outcome.new_ids``: a batch retried because this update failed
    (StoreUnavailable: answer 503) is all duplicates, and must still be judged.
    """
    del outcome  # the signature of the ingest hook; see above why it is not used
    now = datetime.datetime.now(datetime.UTC)
    with metrics.time_store("flags"):
        opened = await asyncio.to_thread(store.update_findings, rows, now)
    for flag in opened:
        metrics.flag_opened(flag.network, flag.method)
    series, collateral = await asyncio.to_thread(_findings_snapshot, store)
    metrics.set_flags(series)
    metrics.set_collateral(collateral)


async def refresh_metrics(store: Store, metrics: Metrics, silent_after_seconds: float) -> None:
    """Set every gauge the store decides: probes live/silent, last seen, flags, collateral.

    For a periodic job: gauges stay right when no batch arrives (a probe falls silent) and
    when another collector process shares the database.
    """
    now = datetime.datetime.now(datetime.UTC)
    probes, last_seen = await asyncio.to_thread(_probes_snapshot, store, silent_after_seconds, now)
    series, collateral = await asyncio.to_thread(_findings_snapshot, store)
    metrics.set_probes(probes)
    metrics.set_network_last_seen(last_seen)
    metrics.set_flags(series)
    metrics.set_collateral(collateral)


def _findings_snapshot(store: Store) -> tuple[list[Any], list[Any]]:
    return store.flag_counts(), store.collateral_counts()


def _probes_snapshot(
    store: Store, silent_after_seconds: float, now: datetime.datetime
) -> tuple[list[Any], list[Any]]:
    return store.probe_counts(silent_after_seconds, now), store.network_last_seen()
