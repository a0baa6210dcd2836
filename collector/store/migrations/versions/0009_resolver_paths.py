"""Flags per resolver path: the resolver of flags, looks and marks, and the blocked looks.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Frozen copies of collector/store/schema.py's ``resolver`` columns of flags, latest_looks and
pending_pairs, the flags' open-once index and the looks' primary key with it, and the new
blocked_looks table. Every row stored before is the line's own resolver's: ``isp``, so that the
flags keep their ids. blocked_looks is filled with the blocked records of the judge's window
(two days), so that the flags being built keep their evidence across the upgrade.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
ISP = "isp"
WINDOW = datetime.timedelta(days=2)
LOOK_COLUMNS = (
    "record_id", "probe_id", "asn", "network", "service", "category", "started_at", "status",
    "method", "blockpage",
)  # fmt: skip


def upgrade() -> None:
    for table in ("flags", "latest_looks", "pending_pairs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("resolver", sa.Text, nullable=False, server_default=ISP))
    op.drop_index("ix_flags_open_once", "flags")
    op.create_index(
        "ix_flags_open_once",
        "flags",
        ["network_key", "service", "resolver", "method"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_flags_resolver_last_seen", "flags", ["resolver", "last_seen"])
    with op.batch_alter_table("latest_looks") as batch:
        batch.drop_constraint("pk_latest_looks", type_="primary")
        batch.create_primary_key("pk_latest_looks", ["service", "network_key", "resolver", "probe_id"])
    op.create_table(
        "blocked_looks",
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("resolver", sa.Text, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("record_id", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("method", sa.Text),
        sa.Column("blockpage", sa.Text),
        sa.PrimaryKeyConstraint("record_id", "resolver", name="pk_blocked_looks"),
    )
    columns = ["network_key", "service", "resolver", "started_at"]
    op.create_index(f"ix_blocked_looks_{'_'.join(columns)}", "blocked_looks", columns)
    op.create_index("ix_blocked_looks_started_at", "blocked_looks", ["started_at"])
    fill_blocked_looks()


def fill_blocked_looks() -> None:
    """Copy the blocked records of the last two days into blocked_looks, as the isp path's."""
    conn = op.get_bind()
    since = datetime.datetime.now(datetime.UTC) - WINDOW
    if conn.dialect.name == "sqlite":  # UTC text without an offset (schema.UTCDateTime)
        since = since.replace(tzinfo=None)
    found = conn.execute(
        sa.text(
            "SELECT id, probe_id, asn, network, service, category, started_at, status, method,"
            " blockpage, received_at FROM measurements"
            " WHERE status = 'blocked' AND started_at >= :since"
        )
        .bindparams(sa.bindparam("since", type_=TIME))
        .columns(started_at=TIME, received_at=TIME),
        {"since": since},
    )
    types: dict[str, Any] = {"asn": sa.BigInteger(), "started_at": TIME, "received_at": TIME}
    names = (*LOOK_COLUMNS, "network_key", "resolver", "received_at")
    table = sa.table("blocked_looks", *(sa.column(c, types.get(c, sa.Text())) for c in names))
    rows = [
        {
            **{c: getattr(r, c) for c in LOOK_COLUMNS if c != "record_id"},
            "record_id": r.id,
            "received_at": r.received_at,
            "network_key": json.dumps([r.asn, r.network], separators=(",", ":"), ensure_ascii=False),
            "resolver": ISP,
        }
        for r in found
    ]
    if rows:
        conn.execute(sa.insert(table), rows)


def downgrade() -> None:
    op.drop_table("blocked_looks")
    op.execute("DELETE FROM latest_looks WHERE resolver <> 'isp'")
    op.execute("DELETE FROM flags WHERE resolver <> 'isp'")
    with op.batch_alter_table("latest_looks") as batch:
        batch.drop_constraint("pk_latest_looks", type_="primary")
        batch.create_primary_key("pk_latest_looks", ["service", "network_key", "probe_id"])
    op.drop_index("ix_flags_resolver_last_seen", "flags")
    op.drop_index("ix_flags_open_once", "flags")
    op.create_index(
        "ix_flags_open_once",
        "flags",
        ["network_key", "service", "method"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    for table in ("pending_pairs", "latest_looks", "flags"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("resolver")
