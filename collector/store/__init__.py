"""The collector's persistence: measurements and probes on SQLite or PostgreSQL, and migrations.

No verdicts and no HTTP here. Entry points: ``open_store(url)`` and ``migrate(url)``.
"""

from collector.store.errors import SchemaMismatch, StoreError, StoreUnavailable
from collector.store.filters import MAX_LIMIT
from collector.store.measurements import InsertOutcome, MeasurementRow
from collector.store.probes import ProbeRow
from collector.store.query import MeasurementQuery, Page
from collector.store.store import Judged, ProbeSeen, Store, open_store
from collector.store.versioning import migrate

__all__ = [
    "MAX_LIMIT",
    "InsertOutcome",
    "Judged",
    "MeasurementQuery",
    "MeasurementRow",
    "Page",
    "ProbeRow",
    "ProbeSeen",
    "SchemaMismatch",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "migrate",
    "open_store",
]
