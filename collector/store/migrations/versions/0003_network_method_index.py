"""An index for filtering measurements by network, status and method together.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

A frozen copy of the index collector/store/schema.py declares on measurements (network, status,
method, started_at, id): the common research query "blocked by method M on network N".
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAME = "ix_measurements_network_status_method_started_at_id"
COLUMNS = ["network", "status", "method", "started_at", "id"]


def upgrade() -> None:
    op.create_index(NAME, "measurements", COLUMNS)


def downgrade() -> None:
    op.drop_index(NAME, "measurements")
