"""A collector process for the concurrency tests: opens the store and ingests batches of ids."""

from __future__ import annotations

from typing import Any

from collector.store import open_store
from tests.support import records


def ingest(url: str, batches: list[list[int]], start: Any, results: Any) -> None:
    """Wait for the start signal, insert each batch of record numbers, report what was new."""
    store = open_store(url)
    try:
        rows = [[records.row(n) for n in batch] for batch in batches]
        start.wait(timeout=60)
        inserted = duplicates = 0
        new_ids: set[str] = set()
        for batch in rows:
            outcome = store.insert_batch(batch)
            inserted += outcome.inserted
            duplicates += outcome.duplicates
            new_ids |= outcome.new_ids
        results.put(("ok", inserted, duplicates, new_ids))
    except Exception as e:
        results.put(("error", repr(e), 0, set()))
    finally:
        store.close()
