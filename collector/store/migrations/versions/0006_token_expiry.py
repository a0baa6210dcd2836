"""Token expiry and renewal: each probe's token expires; a renewed token's predecessor is kept
until a short grace ends.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Tokens issued before this revision never expired: they get an expiry of the upgrade's time plus
the default auth.token_ttl (30 days), so a probe that renews (every version that knows expiry
does) keeps its identity, and a forgotten token stops working.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DEFAULT_TTL = datetime.timedelta(days=30)  # frozen copy of auth.token_ttl's default
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("probes") as batch:
        batch.add_column(sa.Column("token_expires_at", TIME))
        batch.add_column(sa.Column("old_token_hash", sa.Text))
        batch.add_column(sa.Column("old_token_expires_at", TIME))
        batch.create_unique_constraint("uq_probes_old_token_hash", ["old_token_hash"])
    probes = sa.table("probes", sa.column("token_expires_at", TIME))
    expiry = datetime.datetime.now(datetime.UTC) + DEFAULT_TTL
    if op.get_bind().dialect.name == "sqlite":  # UTC text without an offset (schema.UTCDateTime)
        expiry = expiry.replace(tzinfo=None)
    op.execute(probes.update().values(token_expires_at=expiry))


def downgrade() -> None:
    with op.batch_alter_table("probes") as batch:
        batch.drop_constraint("uq_probes_old_token_hash", type_="unique")
        batch.drop_column("old_token_expires_at")
        batch.drop_column("old_token_hash")
        batch.drop_column("token_expires_at")
