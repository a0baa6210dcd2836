"""Database URLs to SQLAlchemy engines (SQLite in WAL mode, PostgreSQL through psycopg 3).

Also the one place where driver errors become ``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import sqlalchemy.engine
import sqlalchemy.exc

from collector.store.errors import StoreUnavailable

EXPECTED = "expected sqlite:///PATH or postgresql://..."
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_SECONDS = 10
# Execution option that marks a transaction as a writer: on SQLite it then starts with
# BEGIN IMMEDIATE, taking the write lock up front (waiting up to busy_timeout) instead of failing
# with SQLITE_BUSY when a deferred transaction tries to upgrade its lock.
WRITE = "surblocage_write"


def parse_url(url: str) -> sa.engine.URL:
    """Check a database URL and return it with its driver fixed, or raise ValueError naming it."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError(f"database url {url!r}: {EXPECTED}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file:"):
            raise ValueError(f"database url {shown!r}: sqlite needs a file path (sqlite:///PATH)")
        return parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        if not parsed.database:
            raise ValueError(f"database url {shown!r}: postgresql needs a database name")
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"database url {shown!r}: {EXPECTED}")


def create_engine(url: str) -> sa.Engine:
    """Return an engine for a checked URL; a SQLite file's directory is created if missing."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_SECONDS
    # pre_ping: a collector outlives a PostgreSQL restart without answering 503 to the next batch
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(parsed: sa.engine.URL) -> sa.Engine:
    assert parsed.database is not None
    path = pathlib.Path(parsed.database).expanduser()
    parsed = parsed.set(database=str(path))
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreUnavailable(f"database directory {str(directory)!r}: {e.strerror}") from e
    # check_same_thread off: the pool hands a connection to one thread at a time, and the HTTP
    # layer calls the store from worker threads (asyncio.to_thread).
    engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transactions away from the sqlite3 module (it would not BEGIN before DDL or reads):
    # SQLAlchemy's "begin" event issues them (the recipe in SQLAlchemy's pysqlite docs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _switch_to_wal(cursor)
    # FULL, not NORMAL: with WAL, NORMAL may lose the last commits on power loss, and a batch is
    # acknowledged to the probe (which then forgets it) only once its commit is durable.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    # WAL persists in the file, so this only changes a new file. That change can answer
    # SQLITE_BUSY at once, without the busy handler, while another process sets up the same new
    # file (two collectors or `migrate`s started together): retry for as long as busy_timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Turn a driver error into StoreUnavailable (HTTP 503: the client keeps the data, retries).

    Every driver error, not only lost connections: arguments are checked before they reach the
    database, so what fails there is the database (locked, full, restarted, not migrated).
    """
    try:
        yield
    except sa.exc.DBAPIError as e:
        raise StoreUnavailable(f"database unavailable: {_first_line(e.orig or e)}") from e
    except sa.exc.DisconnectionError as e:
        raise StoreUnavailable(f"database unavailable: {_first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
