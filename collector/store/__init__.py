"""The collector's persistence: the schema, migrations, transactions, measurements and probes.

SQLite or PostgreSQL through SQLAlchemy Core. No verdicts, no flag rules and no HTTP here: the
flag judge (collector.judge) keeps its findings in tables of this schema, through ``Store.write``
and ``Store.read``, and tells ``open_store`` what a batch writes for it (``on_new_rows``).
Entry points: ``open_store(url)`` and ``migrate(url)``.
"""

from collector.store.errors import SchemaMismatch, StoreError, StoreUnavailable
from collector.store.measurements import InsertOutcome, MeasurementRow
from collector.store.probes import ProbeRow
from collector.store.query import MAX_LIMIT, MeasurementQuery, Page
from collector.store.store import NewRowsWriter, ProbeSeen, Store, open_store
from collector.store.versioning import migrate

__all__ = [
    "MAX_LIMIT",
    "InsertOutcome",
    "MeasurementQuery",
    "MeasurementRow",
    "NewRowsWriter",
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
