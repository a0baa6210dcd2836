"""Schema migrations: Alembic configured in code, revisions shipped inside the package.

No alembic.ini is needed at run time. ``collector/store/alembic.ini`` exists only for developers
who write a new revision (``alembic -c collector/store/alembic.ini revision -m "..."``).
"""

from __future__ import annotations

import pathlib
from typing import Any

import alembic.command
import alembic.config
import alembic.runtime.migration
import alembic.script
import sqlalchemy as sa

from collector.store.engine import WRITE, create_engine, unavailable_on_failure
from collector.store.errors import SchemaMismatch

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
MIGRATE_HINT = "run `surblocage-collector migrate`"


def alembic_config(connection: sa.Connection | None = None) -> alembic.config.Config:
    """Return an Alembic configuration for the packaged revisions, bound to ``connection``."""
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revisions() -> set[str]:
    """Return the revision(s) this code expects the database to be at."""
    return set(alembic.script.ScriptDirectory.from_config(alembic_config()).get_heads())


def migrate(url: str) -> list[str]:
    """Upgrade the database at ``url`` to the head revision; return the revisions applied.

    Safe to run again (applies nothing) and from several collectors at once on PostgreSQL
    (the migration env serializes them with an advisory lock; SQLite with BEGIN IMMEDIATE).
    """
    engine = create_engine(url)
    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        applied.append(step.up_revision_id)

    try:
        with unavailable_on_failure(), engine.execution_options(**{WRITE: True}).connect() as conn:
            config = alembic_config(conn)
            config.attributes["on_version_apply"] = record
            alembic.command.upgrade(config, "head")
    finally:
        engine.dispose()
    return applied


def check_schema(engine: sa.Engine) -> None:
    """Raise SchemaMismatch unless the database is exactly at the head revision."""
    with unavailable_on_failure(), engine.connect() as conn:
        context = alembic.runtime.migration.MigrationContext.configure(conn)
        current = set(context.get_current_heads())
    script = alembic.script.ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    if current == heads:
        return
    if not current:
        raise SchemaMismatch(f"the database has no Surblocage schema: {MIGRATE_HINT}")
    known = {rev.revision for rev in script.walk_revisions()}
    if current <= known:
        raise SchemaMismatch(
            f"the database schema is at {_names(current)}, this collector needs "
            f"{_names(heads)}: {MIGRATE_HINT}"
        )
    raise SchemaMismatch(
        f"the database schema {_names(current)} is newer than this collector "
        f"({_names(heads)}): upgrade Surblocage"
    )


def _names(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions))
