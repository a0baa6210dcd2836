"""Probe revocation and source networks: what the flags need to count sources, not records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A probe's source network (a keyed hash of the /24 or /48 it registered from, or its ASN) and the
time the operator revoked it; the key of those hashes; and each flag's count of distinct source
networks, and whose control it rests on (the collector's, or only the probes'). Probes
registered before have no source: each counts as its own. Flags stored before count one
network and rest on the probes' controls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("probes") as batch:
        batch.add_column(sa.Column("source", sa.Text))
        batch.add_column(sa.Column("revoked_at", TIME))
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("networks", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("control", sa.Text, nullable=False, server_default="probe"))
    op.create_table(
        "collector_keys",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_collector_keys"),
    )


def downgrade() -> None:
    op.drop_table("collector_keys")
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("control")
        batch.drop_column("networks")
    with op.batch_alter_table("probes") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("source")
