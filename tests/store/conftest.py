"""Fixtures of the storage suite: every test runs on SQLite (a temp file) and a real PostgreSQL.

PostgreSQL (tests/support/postgres.py): the session's database, emptied before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.store import Store, migrate, open_store
from tests.support.postgres import reset_pg


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
