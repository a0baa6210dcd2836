"""The flag judge: the findings (flags, collateral) and how they are kept, rules and SQL.

Layout, from the pure rules out to the event loop:
- ``rules``: the flag rules (observations in, flags out) and ``collateral``: which addresses a
  record shows blocked and who stands behind them. Pure: no SQL, no HTTP.
- ``pending``: the pairs a batch marks for judgement in its own transaction; ``looks``: each
  probe's latest look; ``flags``: the stored flags (written, locked, queried); ``addresses``:
  the services' and the blocked addresses, and the collateral query. SQL on a Connection inside
  the caller's transaction, on tables of collector/store/schema.py.
- ``judgement``: one chunk of pending pairs judged in one transaction, batch after batch.
- ``findings``: ``open_store`` (a store whose batches are noted for the judge), and
  ``Findings``, the synchronous entry points: judge what is pending, read flags and collateral.
- ``background``: ``Judge``, which drains in the event loop after batches and before reads, and
  ``refresh_metrics``.

An observation (what one stored verdict contributes) is defined once, in collector/observation.py:
the store's schema derives its columns from it and may not import this package.
"""

from collector.judge.background import Judge, refresh_metrics
from collector.judge.findings import Findings, Judged, note, open_store

__all__ = ["Findings", "Judge", "Judged", "note", "open_store", "refresh_metrics"]
