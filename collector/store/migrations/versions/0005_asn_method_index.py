"""The index for "blocked by method M on network N" on asn, the filter SPEC.md names.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Revision 0003 put it on (network, status, method, started_at, id), but the research API's
network filter is ``asn`` (SPEC.md); the query of docs/benchmarks.md §5 (`asn=&status=&method=
&since=`) could not use it, and stayed at a 404 ms p99 at 10 M records on PostgreSQL. This one
leads with asn; 0003's is dropped, since nothing else read by it (the judge reads blocked records
by (service, asn, network, status, started_at, id), and a `network=` page has its own
(network, started_at, id)), and each index costs every insert. Frozen copies of the index names.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD = "ix_measurements_network_status_method_started_at_id"
OLD_COLUMNS = ["network", "status", "method", "started_at", "id"]
NEW = "ix_measurements_asn_status_method_started_at_id"
NEW_COLUMNS = ["asn", "status", "method", "started_at", "id"]


def upgrade() -> None:
    op.create_index(NEW, "measurements", NEW_COLUMNS)
    op.drop_index(OLD, "measurements")


def downgrade() -> None:
    op.create_index(OLD, "measurements", OLD_COLUMNS)
    op.drop_index(NEW, "measurements")
