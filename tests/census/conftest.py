"""Fixtures of the census's suite: the collector suite's migrated databases, on both backends."""

from tests.collector.conftest import db_url, pg_url, sqlite_url

__all__ = ["db_url", "pg_url", "sqlite_url"]
