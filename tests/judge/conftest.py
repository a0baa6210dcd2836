"""Fixtures of the judge's suite: a migrated store opened as the collector opens it, and its
findings, on SQLite and on a real PostgreSQL (the storage suite's databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.judge import Findings, open_store
from collector.store import Store, migrate
from tests.store.conftest import db_url  # noqa: F401  (a fixture, shared)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    """A migrated store whose batches are noted for the judge, on each backend in turn."""
    migrate(db_url)
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def findings(store: Store) -> Findings:
    """The findings of ``store``."""
    return Findings(store)
