"""The store's exceptions: what the HTTP layer and the commands map to statuses and exit codes.

    StoreError            base of everything the store raises on purpose
    ├── StoreUnavailable  the database cannot be reached or failed at run time (HTTP 503, retry)
    └── SchemaMismatch    the schema is missing, older or newer than this code (run `migrate`)

Bad input (a bad URL, cursor, limit or row) is a ``ValueError`` naming the argument or field.
"""


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or failed while answering; nothing was half-stored."""


class SchemaMismatch(StoreError):
    """The database schema is not the one this code was written for."""
