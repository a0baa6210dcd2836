"""The pairs waiting for judgement: flags judged after the acknowledgement, so ingest need not wait.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

A frozen copy of collector/store/schema.py's pending_pairs: one row a (network, service) pair a
batch, with the batch's newest look of the pair. A database upgraded from 0003 has nothing
pending: until this revision every batch was judged before its acknowledgement.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pending_pairs",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("batch", sa.Text, nullable=False),
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("probe_id", sa.Text),
        sa.Column("record_id", sa.Text),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("category", sa.Text),
        sa.Column("started_at", TIME),
        sa.Column("status", sa.Text),
        sa.Column("method", sa.Text),
        sa.Column("blockpage", sa.Text),
        sa.PrimaryKeyConstraint("seq", name="pk_pending_pairs"),
    )


def downgrade() -> None:
    op.drop_table("pending_pairs")
