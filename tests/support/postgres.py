"""PostgreSQL for the tests: databases of their own on the server SURBLOCAGE_TEST_PG names.

The default server is postgresql://postgres@127.0.0.1:5432/. Unreachable PostgreSQL skips the
tests that need it (a failure in strict mode, CI). Databases come in two lifetimes:

- ``pg_database``: one for the test session, emptied by ``reset_pg`` before each test (creating
  a database costs about half a second: the storage suite runs a hundred tests on this one);
- ``fresh_database()``: one for a single test, dropped WITH (FORCE) after it, for tests whose
  collector processes may still hold connections when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/surblocage_test"


def _server() -> sa.engine.URL:
    return sa.engine.make_url(os.environ.get("SURBLOCAGE_TEST_PG", PG_DEFAULT))


def _connect(url: sa.engine.URL) -> psycopg.Connection:
    """Connect to ``url`` in autocommit (CREATE and DROP DATABASE refuse a transaction)."""
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


def _admin() -> psycopg.Connection:
    """Connect to the server's maintenance database; skip the test if it is unreachable."""
    server = _server()
    try:
        return _connect(server.set(database="postgres"))
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL unreachable at {server!r} (SURBLOCAGE_TEST_PG): {e}")


@contextlib.contextmanager
def _database(name: str) -> Iterator[str]:
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _server().set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database and yield its URL; drop it afterwards."""
    with _database(f"sb_test_{os.getpid()}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of this test session's database; ``reset_pg`` empties it."""
    with _database(f"sb_test_{os.getpid()}") as url:
        yield url


def reset_pg(url: str) -> None:
    """Empty the database at ``url``: the next test starts from no schema at all."""
    with _connect(sa.engine.make_url(url)) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
