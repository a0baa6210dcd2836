"""Fixtures of the daemon tests: a loopback DNS server in a thread, in-process collectors."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector import store as store_mod
from collector.store import MeasurementQuery
from tests.collector.harness import running
from tests.support.dns_server import DNSServer, Zone, serving_in_thread


@pytest.fixture(autouse=True)
def probe_logger() -> Iterator[None]:
    """Undo what a command's logs.setup did to the programs' logger (caplog needs propagation)."""
    yield
    log = logging.getLogger("surblocage")
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
    numbers = itertools.count()
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> InProcessCollector:
            db_url = f"sqlite:///{tmp_path / f'collector{next(numbers)}.db'}"
            store_mod.migrate(db_url)
            c = await stack.enter_async_context(running(db_url, **overrides))
            return InProcessCollector(str(c.client.make_url("")).rstrip("/"), c.store)

        yield start


@pytest.fixture
async def collector(make_collector: Callable[..., Awaitable[Any]]) -> InProcessCollector:
    """An in-process collector with generous rate limits and no control vantage."""
    c: InProcessCollector = await make_collector()
    return c
