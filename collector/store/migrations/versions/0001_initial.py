"""Probes and measurements (schema-1 records).

Revision ID: 0001
Revises:
Create Date: 2026-11-28

A frozen copy of collector/store/schema.py as it was at this revision: later revisions add the
tables of blocking flags and collateral damage without touching this file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "probes",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("declared_asn", sa.BigInteger),
        sa.Column("declared_network", sa.Text),
        sa.Column("last_seen_at", TIME),
        sa.Column("last_asn", sa.BigInteger),
        sa.Column("last_network", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_probes"),
        sa.UniqueConstraint("token_hash", name="uq_probes_token_hash"),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("cc", sa.Text),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("domain", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("method", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("blockpage", sa.Text),
        sa.Column("probe_status", sa.Text),
        sa.Column("probe_method", sa.Text),
        sa.Column("probe_detail", sa.Text),
        sa.Column("probe_blockpage", sa.Text),
        sa.Column("doc", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
    )
    for columns in (
        ["started_at", "id"],
        ["service", "started_at", "id"],
        ["domain", "started_at", "id"],
        ["asn", "started_at", "id"],
        ["network", "started_at", "id"],
        ["status", "method", "started_at", "id"],
        ["probe_id", "started_at", "id"],
        ["received_at"],
    ):
        op.create_index(f"ix_measurements_{'_'.join(columns)}", "measurements", columns)


def downgrade() -> None:
    op.drop_table("measurements")
    op.drop_table("probes")
