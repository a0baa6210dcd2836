"""Fixtures of the collector's suite: fresh databases on SQLite and PostgreSQL, an in-process
collector on loopback, schema-1 records, and a MaxMind-format ASN file.

PostgreSQL comes from SURBLOCAGE_TEST_PG (default postgresql://postgres@127.0.0.1:5432/); each
test gets a database of its own, dropped afterwards. Unreachable PostgreSQL skips those tests
(a failure in strict mode, CI).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import sqlalchemy as sa

from collector import store as store_mod
from tests.collector.harness import Collector, running

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/surblocage_test"


def _admin() -> tuple[psycopg.Connection, sa.engine.URL]:
    server = sa.engine.make_url(os.environ.get("SURBLOCAGE_TEST_PG", PG_DEFAULT))
    conninfo = server.set(drivername="postgresql", database="postgres")
    text = conninfo.render_as_string(hide_password=False)
    return psycopg.connect(text, autocommit=True, connect_timeout=5), server


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """Create an empty PostgreSQL database and yield its URL; drop it afterwards."""
    name = f"sb_collector_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin, server = _admin()
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL unreachable (SURBLOCAGE_TEST_PG): {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        admin, _ = _admin()
        with admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    """A migrated SQLite database in a file of its own."""
    url = f"sqlite:///{tmp_path}/db/collector.db"
    store_mod.migrate(url)
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    with pg_database() as url:
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
