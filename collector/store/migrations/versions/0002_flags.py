"""Findings: flags, latest looks, the addresses of watched services, addresses blocked per network.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

A frozen copy of the flags, latest_looks, service_addresses and blocked_addresses tables and the
pair index of measurements of collector/store/schema.py as they were at this revision.
latest_looks is filled from the records already stored, so that their flags can be judged.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
SEP = (",", ":")  # network_key: JSON [asn, network], as collector/store/schema.py spells it
LOOK_COLUMNS = (
    "service", "network_key", "probe_id", "record_id", "asn", "network", "category",
    "started_at", "status", "method", "blockpage",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("closed_at", TIME),
        sa.Column("probes", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("fingerprinted", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flags"),
    )
    columns = ["network_key", "service", "method", "first_seen"]
    op.create_index(f"ix_flags_{'_'.join(columns)}", "flags", columns)
    op.create_index(
        "ix_flags_open_once",
        "flags",
        ["network_key", "service", "method"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    for column in ("asn", "network", "service", "category", "method", "state", "first_seen"):
        op.create_index(f"ix_flags_{column}_last_seen", "flags", [column, "last_seen"])
    op.create_index("ix_flags_last_seen", "flags", ["last_seen"])
    op.create_table(
        "latest_looks",
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("record_id", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("method", sa.Text),
        sa.Column("blockpage", sa.Text),
        sa.PrimaryKeyConstraint("service", "network_key", "probe_id", name="pk_latest_looks"),
    )
    columns = ["service", "asn", "network", "status", "started_at", "id"]
    op.create_index(f"ix_measurements_{'_'.join(columns)}", "measurements", columns)
    fill_latest_looks()
    op.create_table(
        "service_addresses",
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.PrimaryKeyConstraint("service", "ip", name="pk_service_addresses"),
    )
    op.create_index("ix_service_addresses_ip", "service_addresses", ["ip"])
    op.create_table(
        "blocked_addresses",
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.PrimaryKeyConstraint("network_key", "ip", name="pk_blocked_addresses"),
    )


def fill_latest_looks() -> None:
    """Copy each (service, network, probe)'s newest ok-or-blocked record into latest_looks."""
    conn = op.get_bind()
    found = conn.execute(
        sa.text(
            "SELECT service, asn, network, probe_id, id, category, started_at, status, method,"
            " blockpage FROM (SELECT *, row_number() OVER (PARTITION BY service, asn, network,"
            " probe_id ORDER BY started_at DESC, id DESC) AS rank FROM measurements"
            " WHERE status IN ('ok', 'blocked')) AS ranked WHERE rank = 1"
        ).columns(started_at=TIME)
    )
    types: dict[str, Any] = {"asn": sa.BigInteger(), "started_at": TIME}  # SQLite: fixed width
    table = sa.table("latest_looks", *(sa.column(c, types.get(c, sa.Text())) for c in LOOK_COLUMNS))
    rows = [
        {
            **{c: getattr(r, c) for c in LOOK_COLUMNS if c not in ("network_key", "record_id")},
            "network_key": json.dumps([r.asn, r.network], separators=SEP, ensure_ascii=False),
            "record_id": r.id,
        }
        for r in found
    ]
    if rows:
        conn.execute(sa.insert(table), rows)


def downgrade() -> None:
    op.drop_index("ix_measurements_service_asn_network_status_started_at_id", "measurements")
    op.drop_table("latest_looks")
    op.drop_table("blocked_addresses")
    op.drop_table("service_addresses")
    op.drop_table("flags")
