"""Alembic environment: runs the packaged revisions on the connection the store hands over."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from collector.store.engine import WRITE, create_engine

# Any constant: the key of the PostgreSQL advisory lock that serializes concurrent migrations.
MIGRATION_LOCK_KEY = 0x5B10CA6E

config = context.config


def run_online(connection: sa.Connection) -> None:
    """Apply the revisions in one transaction (both dialects have transactional DDL)."""
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two collectors started together both find no schema; the second waits here and
            # then sees the first one's revisions, instead of failing on CREATE TABLE.
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def url_from_config() -> str:
    """The database of a developer's `alembic` command: -x db=URL, or SURBLOCAGE_DB."""
    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("SURBLOCAGE_DB")
    if not url:
        raise SystemExit("alembic: give the database with -x db=URL or SURBLOCAGE_DB")
    return url


if context.is_offline_mode():
    context.configure(url=url_from_config(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_online(config.attributes["connection"])
else:
    engine = create_engine(url_from_config())
    with engine.execution_options(**{WRITE: True}).connect() as conn:
        run_online(conn)
    engine.dispose()
