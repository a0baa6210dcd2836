"""Fixtures of the daemon tests: a loopback DNS server, an in-process collector, records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from aiohttp import test_utils

from collector import store as store_mod
from collector.app import build_app
from collector.config import load_config
from collector.store import MeasurementQuery
from tests.support.dns_server import DNSServer, Zone, serving_in_thread

GENEROUS = {
    "control.enabled": False,
    "limits.rate_per_probe_per_minute": 1_000_000,
    "limits.rate_per_source_per_minute": 1_000_000,
}


@pytest.fixture(autouse=True)
def probe_logger() -> Iterator[None]:
    """Undo what a command's logs.setup did to the probe's logger (caplog needs propagation)."""
    yield
    log = logging.getLogger("surblocage.probe")
    log.handlers.clear()
    log.setLevel(logging.NOTSET)
    log.propagate = True


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A DNS server on 127.0.0.1 answering NXDOMAIN for every name not in its ``zones``."""
    with serving_in_thread(default=Zone(rcode="NXDOMAIN")) as server:
        yield server


@dataclass
class InProcessCollector:
    """The real collector app on a loopback port, with its store to look into."""

    url: str
    store: Any

    def ids(self, **filters: Any) -> list[str]:
        return [m["id"] for m in self.store.iter_measurements(MeasurementQuery(**filters))]


@pytest.fixture
async def make_collector(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start in-process collectors (the real app on a loopback port) with config overrides."""
    running: list[tuple[test_utils.TestServer, Any]] = []

    async def start(**overrides: Any) -> InProcessCollector:
        db_url = f"sqlite:///{tmp_path / f'collector{len(running)}.db'}"
        store_mod.migrate(db_url)
        db = store_mod.open_store(db_url)
        cfg = load_config(None, {**GENEROUS, "database.url": db_url, **overrides})
        app = build_app(cfg, store=db, registry=prometheus_client.CollectorRegistry())
        server = test_utils.TestServer(app, host="127.0.0.1")
        await server.start_server()
        running.append((server, db))
        return InProcessCollector(str(server.make_url("")).rstrip("/"), db)

    yield start
    for server, db in running:
        await server.close()
        db.close()


@pytest.fixture
async def collector(make_collector: Callable[..., Awaitable[Any]]) -> InProcessCollector:
    """An in-process collector with generous rate limits and no control vantage."""
    c: InProcessCollector = await make_collector()
    return c
