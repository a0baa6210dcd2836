"""Stored blocking flags out as JSON Lines, CSV or Parquet (`export --what flags`).

Contract: flags arrive as ``Findings.query_flags`` gives them (GET /api/v1/flags' shape, latest
seen first). JSON Lines writes each flag as it is; CSV has the fixed columns ``CSV_COLUMNS``, where
``probes`` is a count and ``probe_ids`` and ``evidence`` are space-separated ids; Parquet has
the same columns, typed, with ``probe_ids`` and ``evidence`` as lists of strings.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import IO, Any

from collector import export
from probe.times import parse_rfc3339

CSV_COLUMNS = (
    "id",
    "asn",
    "network",
    "service",
    "category",
    "method",
    "state",
    "first_seen",
    "last_seen",
    "closed_at",
    "probes",
    "probe_ids",
    "confidence",
    "evidence",
)
TIMES = ("first_seen", "last_seen", "closed_at")


def flat(item: dict[str, Any]) -> dict[str, Any]:
    """Return the CSV_COLUMNS of one flag (as GET /api/v1/flags answers it)."""
    # space-separated: probe ids are the collector's (p-<hex>) and record ids UUIDs; but
    # probe.record accepts what uuid.UUID parses, which lets a leading or trailing space through
    row = {c: item.get(c) for c in CSV_COLUMNS}
    row["probes"] = len(item["probes"])
    row["probe_ids"] = " ".join(item["probes"])
    row["evidence"] = " ".join(item["evidence"])
    return row


def encoder(fmt: str) -> export.TextEncoder:
    """A TextEncoder writing flags in ``fmt`` (jsonl or csv)."""
    return export.TextEncoder(fmt, CSV_COLUMNS, flat)


def write_text(
    items: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[bytes],
    progress: export.Progress | None = None,
) -> int:
    """Write flags as JSON Lines or CSV to ``out``; return how many were written."""
    return export.write_text(items, fmt, out, progress, encoder(fmt))


def parquet_schema(pa: Any) -> Any:
    """The Parquet columns: CSV_COLUMNS, typed; probe_ids and evidence are lists of strings."""
    ts = pa.timestamp("us", tz="UTC")
    ids = pa.list_(pa.string())
    types = {
        "asn": pa.int64(),
        "first_seen": ts,
        "last_seen": ts,
        "closed_at": ts,
        "probes": pa.int32(),
        "probe_ids": ids,
        "confidence": pa.float64(),
        "evidence": ids,
    }
    required = {"id", "service", "method", "state", "first_seen", "last_seen", "probes"}
    return pa.schema(
        [pa.field(c, types.get(c, pa.string()), nullable=c not in required) for c in CSV_COLUMNS]
    )


def _time(text: str | None) -> datetime.datetime | None:
    return None if text is None else parse_rfc3339(text)


def parquet_row(item: dict[str, Any]) -> dict[str, Any]:
    """Return one flag as a Parquet row: times as datetimes, ids as lists."""
    row = flat(item)
    row.update({t: _time(item[t]) for t in TIMES})
    row["probe_ids"], row["evidence"] = list(item["probes"]), list(item["evidence"])
    return row


def write_parquet(
    items: Iterable[dict[str, Any]],
    out: str | IO[bytes],
    progress: export.Progress | None = None,
) -> int:
    """Write flags to a Parquet file, one row group per export.PARQUET_ROW_GROUP_RECORDS."""
    return export.write_parquet(items, out, progress, parquet_schema, parquet_row)
