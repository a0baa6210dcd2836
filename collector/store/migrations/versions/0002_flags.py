"""Findings: blocking flags, the addresses of watched services, addresses blocked per network.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

A frozen copy of the flags, service_addresses and blocked_addresses tables of
collector/store/schema.py as they were at this revision (issue 5).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


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


def downgrade() -> None:
    op.drop_table("blocked_addresses")
    op.drop_table("service_addresses")
    op.drop_table("flags")
