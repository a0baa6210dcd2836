"""Stored measurements out as JSON Lines, CSV or Parquet, chunk by chunk (constant memory).

Contract: records arrive from ``Store.iter_measurements`` in (started_at, id) order (or its
reverse, with ``order=desc``) and leave in
chunks, so memory does not grow with the export; CSV has the fixed columns ``COLUMNS`` (one
definition: name, how it is read, Parquet type); Parquet has the same columns, typed, plus
``record`` (the whole stored record as JSON). The writers take another ``Layout`` as a
parameter: collector.export_flags defines that of flags.
"""

from __future__ import annotations

import csv
import importlib
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import msgspec

from collector import diagnostics
from probe import verdict
from probe.times import parse_rfc3339, rfc3339

# ooni: JSON Lines of OONI measurements (collector/export_ooni.py), measurements only
FORMATS = ("jsonl", "csv", "parquet", "ooni")
STREAMED_FORMATS = ("jsonl", "csv", "ooni")  # those the HTTP route streams; Parquet needs a file
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "ooni": "application/x-ndjson",
}
FILE_NAMES = {"jsonl": "jsonl", "csv": "csv", "ooni": "ooni.jsonl"}  # the suffix a download gets
CHUNK_RECORDS = 500
_JSON = msgspec.json.Encoder()  # compact UTF-8, as json.dumps(ensure_ascii=False) writes it
PARQUET_ROW_GROUP_RECORDS = 10_000
Progress = Callable[[int], None]
Shape = Callable[[dict[str, Any]], dict[str, Any]]


class ExportError(Exception):
    """An export that cannot be written as asked (e.g. Parquet without pyarrow)."""


def chunks(items: Iterable[dict[str, Any]], size: int = CHUNK_RECORDS) -> Iterator[list[Any]]:
    """Cut an iterator of records into lists of at most ``size``, pulling lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


@dataclass(frozen=True)
class Column:
    """One column of an export: its name, how it is read from an item (as the API answers it),
    and its Parquet type: ``string``, ``int32``, ``int64``, ``float64``, ``bool`` (true or
    false in CSV), ``time`` (RFC 3339 text
    in the item and in CSV, a UTC timestamp in Parquet) or ``strings`` (a list: space-separated
    in CSV, a list in Parquet). ``required`` columns are never null in Parquet."""

    name: str
    read: Callable[[dict[str, Any]], Any]
    kind: str = "string"
    required: bool = False


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


def _in(block: str, key: str) -> Callable[[dict[str, Any]], Any]:
    """Read ``item[block][key]``, None when either is missing."""
    return lambda item: (item.get(block) or {}).get(key)


def _failure(step: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: _first_failure(item.get(step))


def target_queries(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The DNS queries of the target's own domain, as the verdict reads them (not a redirect's)."""
    domain = (item.get("target") or {}).get("domain")
    found = item.get("dns") or []
    return [r for r in found if isinstance(r, dict) and r.get("name") in (None, domain)]


def dns_failure(item: dict[str, Any]) -> str | None:
    """The failure of the query that decided the verdict's DNS step (probe.verdict): A's, unless
    the A query is missing; none when any query answered."""
    queries = target_queries(item)
    return verdict.lookup_failure(
        [(str(r.get("qtype")), r.get("failure"), bool(r.get("answers"))) for r in queries]
    )


def _query_failure(qtype: str) -> Callable[[dict[str, Any]], Any]:
    """The failure of the target domain's ``qtype`` query (None: it succeeded, or none ran)."""
    return lambda item: _first_failure(r for r in target_queries(item) if r.get("qtype") == qtype)


def _diagnosed(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: diagnostics.scalars(item.get("diagnostics"))[name]


COLUMNS = (
    Column("id", lambda item: item["id"]),
    Column("started_at", lambda item: _utc(item.get("started_at")), "time"),
    Column("received_at", lambda item: item.get("received_at"), "time"),
    Column("probe_id", _in("probe", "id")),
    Column("asn", _in("probe", "asn"), "int64"),
    Column("network", _in("probe", "network")),
    Column("service", _in("target", "service")),
    Column("domain", _in("target", "domain")),
    Column("category", _in("target", "category")),
    Column("url", _in("target", "url")),
    Column("status", _in("verdict", "status")),
    Column("method", _in("verdict", "method")),
    Column("detail", _in("verdict", "detail")),
    Column("blockpage", _in("verdict", "blockpage")),
    Column("probe_status", _in("probe_verdict", "status")),
    Column("probe_method", _in("probe_verdict", "method")),
    Column("probe_detail", _in("probe_verdict", "detail")),
    Column("dns_failure", dns_failure),
    Column("tcp_failure", _failure("tcp")),
    Column("tls_failure", _failure("tls")),
    Column("http_failure", _in("http", "failure")),
    Column("http_status", _in("http", "status"), "int32"),
    Column("resolver", _in("probe", "resolver")),
    Column("dns_failure_a", _query_failure("A")),
    Column("dns_failure_aaaa", _query_failure("AAAA")),
    # what the probe's diagnostics found (collector/diagnostics.py); null when not diagnosed
    *(
        Column(name, _diagnosed(name), kind)
        for name, kind in (
            ("diag_skipped", "string"),
            ("diag_dns_injection", "string"),
            ("diag_reset_origin", "string"),
            ("diag_location_hop", "int32"),
            ("diag_location_address", "string"),
            ("diag_location_asn", "int64"),
            ("diag_location_network", "string"),
        )
    ),
)
CSV_COLUMNS = tuple(c.name for c in COLUMNS)


def flat(item: dict[str, Any], columns: Sequence[Column] = COLUMNS) -> dict[str, Any]:
    """Return the ``columns`` of one item (a stored record as the query API answers it)."""
    return {c.name: c.read(item) for c in columns}


class TextEncoder:
    """Items to bytes in a text format: ``header()`` once, then ``encode(chunk)`` per chunk.

    JSON Lines writes each item as it is; CSV writes the ``columns`` of each item; ooni writes
    each item as ``shape`` makes it (JSON Lines of another shape).
    """

    def __init__(
        self, fmt: str, columns: Sequence[Column] = COLUMNS, shape: Shape | None = None
    ) -> None:
        if fmt not in STREAMED_FORMATS:
            raise ExportError(f"format: {fmt!r} is not one of {', '.join(STREAMED_FORMATS)}")
        if fmt == "ooni" and shape is None:
            raise ExportError("format: ooni is for measurements only")
        self.fmt, self.columns, self.shape = fmt, columns, shape

    def header(self) -> bytes:
        return self._csv([[c.name for c in self.columns]]) if self.fmt == "csv" else b""

    def encode(self, chunk: list[dict[str, Any]]) -> bytes:
        if self.fmt == "ooni" and self.shape is not None:
            return b"".join([_JSON.encode(self.shape(item)) + b"\n" for item in chunk])
        if self.fmt == "jsonl":
            return b"".join([_JSON.encode(item) + b"\n" for item in chunk])
        return self._csv([[_csv_value(c.read(item)) for c in self.columns] for item in chunk])

    @staticmethod
    def _csv(rows: list[list[Any]]) -> bytes:
        # RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        return buf.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    # space-separated: probe ids are the collector's (p-<hex>) and record ids UUIDs; but
    # probe.record accepts what uuid.UUID parses, which lets a leading or trailing space through
    return " ".join(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Layout:
    """What an export writes: its ``columns``, whether Parquet adds ``record`` (the whole
    item as JSON, after the columns), and the ``shape`` format ooni gives each item (None: the
    layout has no ooni format)."""

    columns: tuple[Column, ...]
    record: bool = False
    shape: Shape | None = None


MEASUREMENTS = Layout(COLUMNS, record=True)


def write_text(
    items: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[bytes],
    progress: Progress | None = None,
    layout: Layout = MEASUREMENTS,
) -> int:
    """Write items as JSON Lines or CSV (the ``layout``'s columns) to ``out``; return how many
    were written."""
    encoder = TextEncoder(fmt, layout.columns, layout.shape)
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


def parquet_schema(pa: Any, layout: Layout = MEASUREMENTS) -> Any:
    """The Parquet columns of ``layout``, typed, then ``record`` if it has one."""
    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"),
        "strings": pa.list_(pa.string()),
    }
    fields = [pa.field(c.name, types[c.kind], nullable=not c.required) for c in layout.columns]
    if layout.record:
        fields.append(pa.field("record", pa.string(), nullable=False))
    return pa.schema(fields)


def parquet_row(item: dict[str, Any], layout: Layout = MEASUREMENTS) -> dict[str, Any]:
    """Return one item as a Parquet row: times as datetimes, lists as lists, then ``record``."""
    row = flat(item, layout.columns)
    for c in layout.columns:
        if c.kind == "time" and row[c.name] is not None:
            row[c.name] = parse_rfc3339(row[c.name])
    if layout.record:
        row["record"] = _JSON.encode(item).decode()
    return row


def write_parquet(
    items: Iterable[dict[str, Any]],
    out: str | IO[bytes],
    progress: Progress | None = None,
    layout: Layout = MEASUREMENTS,
) -> int:
    """Write items to a Parquet file, one row group per PARQUET_ROW_GROUP_RECORDS items."""
    pa, pq = _pyarrow()
    schema = parquet_schema(pa, layout)
    written = 0
    with pq.ParquetWriter(out, schema) as writer:
        for group in chunks(items, PARQUET_ROW_GROUP_RECORDS):
            table = pa.Table.from_pylist([parquet_row(i, layout) for i in group], schema=schema)
            writer.write_table(table, row_group_size=len(group))
            written += len(group)
            if progress:
                progress(written)
    return written


def check_parquet() -> None:
    """Raise ExportError now, before anything is read, if Parquet cannot be written."""
    _pyarrow()
