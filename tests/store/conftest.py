"""Fixtures of the storage suite: every test runs on SQLite (a temp file) and a real PostgreSQL.

PostgreSQL comes from SURBLOCAGE_TEST_PG; the session works in its own database, sb_test_<pid>,
dropped at the end. Unreachable PostgreSQL skips those tests (a failure in strict mode, CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from collector.store import Store, migrate, open_store

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/surblocage_test"


def _admin(url: sa.engine.URL) -> psycopg.Connection:
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Create a database for this test session and return its URL; drop it afterwards."""
    server = sa.engine.make_url(os.environ.get("SURBLOCAGE_TEST_PG", PG_DEFAULT))
    name = f"sb_test_{os.getpid()}"
    try:
        admin = _admin(server)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL unreachable at {server!r} (SURBLOCAGE_TEST_PG): {e}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield server.set(database=name).render_as_string(hide_password=False)
    with _admin(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_pg(url: str) -> None:
    """Empty the test database: the next test starts from no schema at all."""
    with _admin(sa.engine.make_url(url)) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store')}/data/surblocage.db"
    url: str = request.getfixturevalue("pg_database")
    reset_pg(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated, open store on each backend in turn."""
    migrate(db_url)
    opened = open_store(db_url)
    yield opened
    opened.close()
