"""Stored measurements: the row built from a record, idempotent batch insert, reads in order.

Functions here take a Connection inside the caller's transaction; ``Store`` owns transactions.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.store.query import (
    MeasurementQuery,
    Page,
    after,
    descending,
    encode_cursor,
    order_by,
    where,
)
from collector.store.schema import (
    UTC,
    check_asn,
    check_text,
    check_time,
    document_text,
    measurements,
)
from probe import record

# the text columns of the table, checked before a row is written (both dialects must hold them)
TEXT_COLUMNS = tuple(c.name for c in measurements.c if isinstance(c.type, sa.Text))
ITEM_COLUMNS = (
    measurements.c.id,
    measurements.c.started_at,
    measurements.c.received_at,
    measurements.c.doc,
    measurements.c.probe_status,
    measurements.c.probe_method,
    measurements.c.probe_detail,
    measurements.c.probe_blockpage,
)


@dataclass(frozen=True)
class InsertOutcome:
    """What a batch did: ``inserted + duplicates`` is the number of distinct ids in the batch.

    ``new_ids`` are the ids this batch stored (the others were there already), for metrics and
    analysis that must count each record once.
    """

    inserted: int
    duplicates: int
    new_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MeasurementRow:
    """One measurements row; ``status``..``blockpage`` are the collector's verdict."""

    id: str
    probe_id: str
    received_at: datetime.datetime
    started_at: datetime.datetime
    asn: int | None
    network: str | None
    cc: str | None
    service: str
    domain: str
    category: str
    status: str
    method: str | None
    detail: str | None
    blockpage: str | None
    probe_status: str | None
    probe_method: str | None
    probe_detail: str | None
    probe_blockpage: str | None
    doc: dict[str, Any]
    # ``doc`` encoded as stored: at construction, before the writer's turn (collector.store.writer)
    doc_text: str = dataclasses.field(init=False, compare=False, repr=False)
    # the network the probe declared (the record's, else its registration's), which the
    # collector's ASN database may overrule in ``network``: a label of the ingest metrics only
    declared_network: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in TEXT_COLUMNS:
            check_text(name, getattr(self, name))
        for name in ("id", "probe_id", "service", "domain", "category", "status"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must not be empty")
        check_asn("asn", self.asn)
        check_time("received_at", self.received_at)
        check_time("started_at", self.started_at)
        try:
            object.__setattr__(self, "doc_text", document_text(self.doc))
        except UnicodeEncodeError as e:  # an unpaired surrogate, which JSON bodies cannot carry
            raise ValueError(f"doc: not encodable in UTF-8 ({e.reason})") from None

    @classmethod
    def from_record(
        cls,
        m: record.Measurement,
        *,
        probe_id: str,
        asn: int | None,
        network: str | None,
        received_at: datetime.datetime,
        probe_verdict: record.Verdict | None,
        submitted: dict[str, Any] | None = None,
        resolver: dict[str, Any] | None = None,
        declared_network: str | None = None,
    ) -> MeasurementRow:
        """Build the row for a record whose ``verdict`` the collector has recomputed.

        ``probe_id`` is the authenticated probe and ``asn``/``network`` the network the collector
        decided on; the stored document says the same (its ``probe`` block is overwritten), so
        that a record read back agrees with the filters that found it. ``probe_verdict`` is what
        the probe itself concluded, kept beside the collector's. ``submitted`` is the record as
        the probe sent it, already validated into ``m``: stored as sent (keys a newer probe
        adds are kept) with the verdict and probe block replaced, instead of ``m`` encoded
        again (docs/benchmarks.md §5: validating and encoding again were a quarter of ingest).
        ``resolver`` (ingest.resolver_network) joins the probe block.
        """
        if m.verdict is None:
            raise ValueError("verdict: the collector's verdict is missing")
        if submitted is None:
            doc = m.to_dict()
        else:
            doc = dict(submitted)
            v = m.verdict
            doc["verdict"] = {
                "status": v.status, "method": v.method, "detail": v.detail, "blockpage": v.blockpage
            }  # fmt: skip
            if m.paths or "paths" in doc:  # the paths' verdicts, recomputed as the record's is
                doc["paths"] = record.encode(m.paths)
        doc["probe"] = {**doc["probe"], "id": probe_id, "asn": asn, "network": network}
        doc["probe"].update(resolver or {})  # the collector's reading of probe.whoami
        mine, theirs = m.verdict, probe_verdict
        return cls(
            id=m.id,
            probe_id=probe_id,
            received_at=received_at,
            started_at=parse_time("started_at", m.started_at),
            asn=asn,
            network=network,
            cc=m.probe.cc,
            service=m.target.service,
            domain=m.target.domain,
            category=m.target.category,
            status=mine.status,
            method=mine.method,
            detail=mine.detail,
            blockpage=mine.blockpage,
            probe_status=theirs.status if theirs else None,
            probe_method=theirs.method if theirs else None,
            probe_detail=theirs.detail if theirs else None,
            probe_blockpage=theirs.blockpage if theirs else None,
            doc=doc,
            declared_network=declared_network,
        )


def parse_time(path: str, value: str) -> datetime.datetime:
    """Parse an RFC 3339 time with its zone, or raise ValueError naming ``path``."""
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError(f"{path}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{path}: {value!r} has no time zone")
    return parsed


def rfc3339(value: datetime.datetime) -> str:
    """Format an aware time as RFC 3339 UTC with a Z, as records spell it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(MeasurementRow)
    if f.name not in ("doc_text", "declared_network")  # not columns
)


def _params(row: MeasurementRow) -> dict[str, Any]:
    params = {name: getattr(row, name) for name in _FIELDS}
    params["doc"] = row.doc_text
    return params


def insert(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> InsertOutcome:
    """Insert the rows whose id is new, in one statement stream; count what was new."""
    distinct: dict[str, MeasurementRow] = {}
    for row in rows:
        distinct.setdefault(row.id, row)
    if not distinct:
        return InsertOutcome(inserted=0, duplicates=0)
    # Ascending id order: concurrent batches that overlap take their row locks in the same
    # order on PostgreSQL, so they wait for each other instead of deadlocking.
    # shallow: dataclasses.asdict would deep-copy every nested list of each document, the
    # largest single cost of ingest (docs/benchmarks.md §5)
    params = [_params(distinct[key]) for key in sorted(distinct)]
    stmt: sa.Insert
    if conn.dialect.name == "postgresql":
        stmt = sa.dialects.postgresql.insert(measurements).on_conflict_do_nothing(
            index_elements=["id"]
        )
    else:
        stmt = sa.dialects.sqlite.insert(measurements).on_conflict_do_nothing(index_elements=["id"])
    new_ids = frozenset(conn.execute(stmt.returning(measurements.c.id), params).scalars())
    return InsertOutcome(
        inserted=len(new_ids), duplicates=len(distinct) - len(new_ids), new_ids=new_ids
    )


def select_page(conn: sa.Connection, q: MeasurementQuery, position: Any, limit: int) -> Page:
    """Return up to ``limit`` items after ``position`` (None: from the start), in the order of
    ``q``."""
    stmt = sa.select(*ITEM_COLUMNS).where(*where(q))
    if position is not None:
        stmt = stmt.where(after(position, descending(q)))
    rows = conn.execute(stmt.order_by(*order_by(q)).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].started_at, rows[-1].id) if more else None
    return Page(items=[item(row) for row in rows], next_cursor=cursor)


def count(conn: sa.Connection, q: MeasurementQuery) -> int:
    """Return how many stored records match the filters of ``q``."""
    stmt = sa.select(sa.func.count()).select_from(measurements).where(*where(q))
    return int(conn.execute(stmt).scalar_one())


def item(row: Any) -> dict[str, Any]:
    """Return the stored document with the probe's own verdict and the time it arrived."""
    doc = dict(row.doc)
    doc["probe_verdict"] = (
        None
        if row.probe_status is None
        else {
            "status": row.probe_status,
            "method": row.probe_method,
            "detail": row.probe_detail,
            "blockpage": row.probe_blockpage,
        }
    )
    doc["received_at"] = rfc3339(row.received_at)
    return doc
