"""Stored measurements out as JSON Lines, CSV or Parquet, chunk by chunk (constant memory).

Contract: records arrive from ``Store.iter_measurements`` in (started_at, id) order and leave in
chunks, so memory does not grow with the export; CSV has the fixed columns ``CSV_COLUMNS``;
Parquet has the same columns, typed, plus ``record`` (the whole stored record as JSON). The
writers take other columns as parameters: collector.export_flags passes those of flags.
"""

from __future__ import annotations

import csv
import importlib
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgspec

from probe.times import parse_rfc3339, rfc3339

FORMATS = ("jsonl", "csv", "parquet")
STREAMED_FORMATS = ("jsonl", "csv")  # those the HTTP route streams; Parquet needs a file
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CHUNK_RECORDS = 500
_JSON = msgspec.json.Encoder()  # compact UTF-8, as json.dumps(ensure_ascii=False) writes it
PARQUET_ROW_GROUP_RECORDS = 10_000
CSV_COLUMNS = (
    "id",
    "started_at",
    "received_at",
    "probe_id",
    "asn",
    "network",
    "service",
    "domain",
    "category",
    "url",
    "status",
    "method",
    "detail",
    "blockpage",
    "probe_status",
    "probe_method",
    "probe_detail",
    "dns_failure",
    "tcp_failure",
    "tls_failure",
    "http_failure",
    "http_status",
    "resolver",
)
Progress = Callable[[int], None]
Flatten = Callable[[dict[str, Any]], dict[str, Any]]


class ExportError(Exception):
    """An export that cannot be written as asked (e.g. Parquet without pyarrow)."""


def chunks(items: Iterable[dict[str, Any]], size: int = CHUNK_RECORDS) -> Iterator[list[Any]]:
    """Cut an iterator of records into lists of at most ``size``, pulling lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _first_failure(results: Any) -> str | None:
    """The first failure among a step's results, in record order (None if every one succeeded)."""
    for r in results or ():
        if isinstance(r, dict) and r.get("failure"):
            return str(r["failure"])
    return None


def _utc(text: str | None) -> str | None:
    """An RFC 3339 time as UTC with a Z, whatever offset the probe wrote it with."""
    if text is None:
        return None
    return rfc3339(parse_rfc3339(text))


def flat(item: dict[str, Any]) -> dict[str, Any]:
    """Return the CSV_COLUMNS of one stored record (as the query API answers it)."""
    probe, target = item.get("probe") or {}, item.get("target") or {}
    verdict, theirs = item.get("verdict") or {}, item.get("probe_verdict") or {}
    http = item.get("http") or {}
    return {
        "id": item["id"],
        "started_at": _utc(item.get("started_at")),
        "received_at": item.get("received_at"),
        "probe_id": probe.get("id"),
        "asn": probe.get("asn"),
        "network": probe.get("network"),
        "service": target.get("service"),
        "domain": target.get("domain"),
        "category": target.get("category"),
        "url": target.get("url"),
        "status": verdict.get("status"),
        "method": verdict.get("method"),
        "detail": verdict.get("detail"),
        "blockpage": verdict.get("blockpage"),
        "probe_status": theirs.get("status"),
        "probe_method": theirs.get("method"),
        "probe_detail": theirs.get("detail"),
        "dns_failure": _first_failure(item.get("dns")),
        "tcp_failure": _first_failure(item.get("tcp")),
        "tls_failure": _first_failure(item.get("tls")),
        "http_failure": http.get("failure"),
        "http_status": http.get("status"),
        "resolver": probe.get("resolver"),
    }


class TextEncoder:
    """Records to bytes in a text format: ``header()`` once, then ``encode(chunk)`` per chunk.

    JSON Lines writes each item as it is; CSV writes ``columns`` of ``flatten(item)``.
    """

    def __init__(
        self, fmt: str, columns: tuple[str, ...] = CSV_COLUMNS, flatten: Flatten = flat
    ) -> None:
        if fmt not in STREAMED_FORMATS:
            raise ExportError(f"format: {fmt!r} is not one of {', '.join(STREAMED_FORMATS)}")
        self.fmt, self.columns, self.flatten = fmt, columns, flatten

    def header(self) -> bytes:
        return self._csv([list(self.columns)]) if self.fmt == "csv" else b""

    def encode(self, chunk: list[dict[str, Any]]) -> bytes:
        if self.fmt == "jsonl":
            return b"".join([_JSON.encode(item) + b"\n" for item in chunk])
        flats = (self.flatten(item) for item in chunk)
        return self._csv([["" if f[c] is None else f[c] for c in self.columns] for f in flats])

    @staticmethod
    def _csv(rows: list[list[Any]]) -> bytes:
        # RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        return buf.getvalue().encode()


def write_text(
    items: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[bytes],
    progress: Progress | None = None,
    encoder: TextEncoder | None = None,
) -> int:
    """Write records as JSON Lines or CSV to ``out``; return how many were written.

    ``encoder`` (for ``fmt``) gives other CSV columns than the measurements'.
    """
    encoder = encoder or TextEncoder(fmt)
    out.write(encoder.header())
    written = 0
    for chunk in chunks(items):
        out.write(encoder.encode(chunk))
        written += len(chunk)
        if progress:
            progress(written)
    return written


def _pyarrow() -> Any:
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ExportError(
            "format parquet: pyarrow is not installed; install surblocage[parquet]"
        ) from None


def parquet_schema(pa: Any) -> Any:
    """The Parquet columns: CSV_COLUMNS, typed, then ``record`` (the stored record as JSON)."""
    ts = pa.timestamp("us", tz="UTC")
    types = {"started_at": ts, "received_at": ts, "asn": pa.int64(), "http_status": pa.int32()}
    fields = [pa.field(c, types.get(c, pa.string())) for c in CSV_COLUMNS]
    return pa.schema([*fields, pa.field("record", pa.string(), nullable=False)])


def _parquet_row(item: dict[str, Any]) -> dict[str, Any]:
    row = flat(item)
    for key in ("started_at", "received_at"):
        if row[key] is not None:
            row[key] = parse_rfc3339(row[key])
    row["record"] = _JSON.encode(item).decode()
    return row


def write_parquet(
    items: Iterable[dict[str, Any]],
    out: str | IO[bytes],
    progress: Progress | None = None,
    schema_of: Callable[[Any], Any] = parquet_schema,
    row_of: Flatten = _parquet_row,
) -> int:
    """Write records to a Parquet file, one row group per PARQUET_ROW_GROUP_RECORDS records.

    ``schema_of(pyarrow)`` and ``row_of(item)`` give other columns than the measurements'.
    """
    pa, pq = _pyarrow()
    schema = schema_of(pa)
    written = 0
    with pq.ParquetWriter(out, schema) as writer:
        for group in chunks(items, PARQUET_ROW_GROUP_RECORDS):
            table = pa.Table.from_pylist([row_of(i) for i in group], schema=schema)
            writer.write_table(table, row_group_size=len(group))
            written += len(group)
            if progress:
                progress(written)
    return written


def check_parquet() -> None:
    """Raise ExportError now, before anything is read, if Parquet cannot be written."""
    _pyarrow()
