"""The collateral census: the domain index, the probes' sweeps, the collector's look at each
address, the address flags and the address judge's looks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Frozen copies of collector/store/schema.py's domains, domain_addresses, sweeps, address_vantage,
address_flags, address_looks and address_blocked_looks. A database upgraded from 0007 has an
empty index: nothing is counted until `surblocage-collector domains import` and a resolution
have filled it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", SERIAL, nullable=False, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("rank", sa.BigInteger),
        sa.Column("intended", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("added_at", TIME, nullable=False),
        sa.Column("resolved_at", TIME),
        sa.PrimaryKeyConstraint("id", name="pk_domains"),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_index("ix_domains_resolved_at", "domains", ["resolved_at"])
    op.create_table(
        "domain_addresses",
        sa.Column("domain_id", sa.BigInteger, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.PrimaryKeyConstraint("domain_id", "ip", name="pk_domain_addresses"),
    )
    op.create_index(
        "ix_domain_addresses_ip_domain_id_last_seen",
        "domain_addresses",
        ["ip", "domain_id", "last_seen"],
    )
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("judged_at", TIME),
        sa.Column("doc", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
    )
    op.create_index("ix_sweeps_probe_id_started_at", "sweeps", ["probe_id", "started_at"])
    op.create_index("ix_sweeps_judged_at_received_at", "sweeps", ["judged_at", "received_at"])
    op.create_table(
        "address_vantage",
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("sni", sa.Text),
        sa.Column("checked_at", TIME, nullable=False),
        sa.Column("failure", sa.Text),
        sa.PrimaryKeyConstraint("ip", name="pk_address_vantage"),
    )
    op.create_table(
        "address_flags",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("closed_at", TIME),
        sa.Column("probes", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("networks", sa.Integer, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("id", name="pk_address_flags"),
    )
    op.create_index(
        "ix_address_flags_network_key_ip_method_first_seen",
        "address_flags",
        ["network_key", "ip", "method", "first_seen"],
    )
    op.create_index(
        "ix_address_flags_open_once",
        "address_flags",
        ["network_key", "ip", "method"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_address_flags_state_network_key", "address_flags", ["state", "network_key"]
    )
    op.create_index("ix_address_flags_ip_first_seen", "address_flags", ["ip", "first_seen"])
    op.create_table(
        "address_looks",
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("sweep_id", sa.Text, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("method", sa.Text),
        sa.PrimaryKeyConstraint("network_key", "ip", "probe_id", name="pk_address_looks"),
    )
    op.create_index(
        "ix_address_looks_ip_started_at", "address_looks", ["ip", "started_at"]
    )
    op.create_table(
        "address_blocked_looks",
        sa.Column("network_key", sa.Text, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("sweep_id", sa.Text, nullable=False),
        sa.Column("probe_id", sa.Text, nullable=False),
        sa.Column("asn", sa.BigInteger),
        sa.Column("network", sa.Text),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint(
            "network_key", "ip", "sweep_id", name="pk_address_blocked_looks"
        ),
    )
    op.create_index(
        "ix_address_blocked_looks_started_at", "address_blocked_looks", ["started_at"]
    )


def downgrade() -> None:
    for table in (
        "address_blocked_looks",
        "address_looks",
        "address_flags", "address_vantage", "sweeps", "domain_addresses",
        "domains",
    ):
        op.drop_table(table)
