"""`serve`'s background resolution of the domain index: at start, then every census.refresh
seconds, the names resolved longer ago than that (never resolved: first), at most census.qps a
second. A restart does not resolve again what a pass resolved less than census.refresh ago.

The work is in the event loop (the lookups) and in worker threads (the database): it never
holds a request up. A pass that fails (the database unavailable) is logged and tried again at
the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from typing import Any

from collector.census import index, resolve
from collector.config import CollectorConfig
from collector.metrics import Metrics
from collector.store import StoreUnavailable
from probe import addresses, logs
from probe import config as probe_config

RETRY_SECONDS = 300.0  # after a failed pass: the database may be back


def resolver_for(cfg: CollectorConfig) -> resolve.Resolver:
    """The census's resolver: census.resolver, else control.resolver, else the system's
    (ConfigError if /etc/resolv.conf names none)."""
    address = cfg.census_resolver or cfg.control_resolver or probe_config.system_resolver()
    return resolve.resolver_of(address, addresses.networks(cfg.allow_networks))


async def run(
    cfg: CollectorConfig,
    store: Any,
    metrics: Metrics,
    resolver: resolve.Resolver,
    stop: asyncio.Event,
    on_pass: Callable[[], None] | None = None,
) -> None:
    """Resolve the index's due names at start and every census.refresh seconds until ``stop``;
    ``on_pass`` is called after each pass that resolved names (the published addresses follow
    the index)."""
    refresh = datetime.timedelta(seconds=cfg.census_refresh_seconds)
    while not stop.is_set():
        wait = cfg.census_refresh_seconds
        try:
            summary = await one_pass(cfg, store, metrics, resolver, refresh, stop)
            if on_pass is not None and summary.names:
                on_pass()
        except StoreUnavailable as e:
            logs.event(
                "census: resolving the domain index failed: the database is unavailable",
                logging.WARNING, error=str(e),
            )  # fmt: skip
            wait = min(wait, RETRY_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def one_pass(
    cfg: CollectorConfig,
    store: Any,
    metrics: Metrics,
    resolver: resolve.Resolver,
    refresh: datetime.timedelta,
    stop: asyncio.Event,
) -> resolve.Summary:
    """Resolve the names last resolved more than ``refresh`` ago; log the pass, set the metrics."""
    metrics.set_census_index_domains(await asyncio.to_thread(store.read, index.count))
    cutoff = datetime.datetime.now(datetime.UTC) - refresh
    summary = await resolve.Pass(
        store,
        resolver,
        cfg.census_qps,
        cutoff,
        counted=metrics.census_resolved,
        stop=stop,
    ).run()
    logs.event(
        "census: domain index resolved", names=summary.names, answered=summary.answered,
        addresses=summary.addresses, failures=summary.failures,
        seconds=round(summary.seconds, 1),
    )  # fmt: skip
    metrics.set_census_index_domains(await asyncio.to_thread(store.read, index.count))
    return summary
