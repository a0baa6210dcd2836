"""Learned block signatures: the positive controls' observations and the signatures learned.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Frozen copies of collector/store/schema.py's signature_observations and learned_signatures.
A database upgraded from 0008 has learned nothing: signatures come from batches stored after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signature_observations",
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("resolver", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("network", sa.Text),
        sa.Column("record_id", sa.Text, nullable=False),
        sa.Column("seen_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "asn", "resolver", "kind", "value", "service", "probe_id",
            name="pk_signature_observations",
        ),
    )  # fmt: skip
    op.create_table(
        "learned_signatures",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("network", sa.Text),
        sa.Column("resolver", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("probes", sa.Integer, nullable=False),
        sa.Column("controls", sa.Integer, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("retired_at", TIME),
        sa.PrimaryKeyConstraint("id", name="pk_learned_signatures"),
    )
    op.create_index(
        "ix_learned_signatures_kind_value", "learned_signatures", ["kind", "value"]
    )
    op.create_index(
        "ix_learned_signatures_asn_resolver", "learned_signatures", ["asn", "resolver"]
    )


def downgrade() -> None:
    op.drop_table("learned_signatures")
    op.drop_table("signature_observations")
