"""Fixtures of the collector's suite: fresh migrated databases on SQLite and PostgreSQL, and an
in-process collector on loopback.

PostgreSQL (tests/support/postgres.py): each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from collector import store as store_mod
from tests.collector.harness import Collector, running
from tests.support.postgres import fresh_database


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    """A migrated SQLite database in a file of its own."""
    url = f"sqlite:///{tmp_path}/db/collector.db"
    store_mod.migrate(url)
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    with fresh_database() as url:
        store_mod.migrate(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database, on each backend in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def collector(db_url: str) -> AsyncIterator[Collector]:
    """An in-process collector on loopback over ``db_url`` (no control vantage)."""
    async with running(db_url) as c:
        yield c
