"""A submitted batch -> rows to store: validation, the probe's network, the recomputed verdict.

A batch is judged whole: the first record at fault rejects it, with a message naming the record
and the field (``records[3].dns[0].rcode: expected a string``), so nothing is half-stored.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import msgspec

from collector import bodies, diagnostics
from collector.store import MeasurementRow
from collector.store.probes import ProbeRow
from probe import addresses, verdict
from probe.record import SCHEMA, MalformedRecord, Measurement, check_semantics

AsnLookup = Callable[[str], int | None]
# an address -> (ASN, network name) from the collector's ASN database, None if unknown
NetworkLookup = diagnostics.NetworkLookup

# A probe's clock may run a little ahead of the collector's; further ahead is a forged date
# (a record from 2099 would keep its flag open for as long as its sender liked).
MAX_CLOCK_AHEAD = datetime.timedelta(minutes=5)
# Records older than this are refused: the default of `ingest.max_record_age`.
MAX_RECORD_AGE = datetime.timedelta(days=7)


class BatchError(ValueError):
    """A batch refused whole; ``status`` is the HTTP status to answer (400, 403, 413)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason

    def __reduce__(self) -> tuple[Any, tuple[int, str, str]]:
        # picklable as it is built, for a batch prepared in another process
        return BatchError, (self.status, self.message, self.reason)


def prepare_batch(
    raw: bytes,
    max_records: int,
    probe: ProbeRow,
    looked_up: tuple[int, str | None] | None,
    fingerprints: verdict.Fingerprints,
    asn_of: AsnLookup | None = None,
    max_age: datetime.timedelta = MAX_RECORD_AGE,
    network_of_address: NetworkLookup | None = None,
) -> list[MeasurementRow]:
    """A submitted body -> the rows to store: decode, validate (``parse_batch``), recompute the
    verdicts (``prepare_rows``), refuse dates out of range (``check_dates``); BatchError for
    what is refused, bad JSON included."""
    body = decode_body(raw)
    records = parse_batch(body, max_records, probe.id)
    now = datetime.datetime.now(datetime.UTC)
    rows = prepare_rows(
        records,
        probe,
        looked_up,
        fingerprints,
        asn_of,
        now=now,
        submitted=body["records"],
        network_of_address=network_of_address,
    )
    check_dates(rows, now, max_age)
    return rows


def check_dates(
    rows: list[MeasurementRow], now: datetime.datetime, max_age: datetime.timedelta
) -> None:
    """Refuse a batch with a record started more than MAX_CLOCK_AHEAD after ``now`` or more
    than ``max_age`` before it: the flags weigh records by their dates."""
    for i, row in enumerate(rows):
        if row.started_at > now + MAX_CLOCK_AHEAD:
            raise BatchError(
                400,
                f"records[{i}].started_at: {row.started_at.isoformat()} is in the future "
                f"(more than {MAX_CLOCK_AHEAD} after the collector's clock)",
                "schema",
            )
        if row.started_at < now - max_age:
            raise BatchError(
                400,
                f"records[{i}].started_at: {row.started_at.isoformat()} is older than "
                f"the collector keeps ({max_age})",
                "schema",
            )


def decode_body(raw: bytes) -> Any:
    """The submitted body as plain values (dicts, lists...); BatchError if it is not JSON or
    past the bounds of collector/bodies.py (depth, integer size, keys an object)."""
    try:
        return bodies.decode_json(raw)
    except bodies.BodyError as e:
        raise BatchError(e.status, e.message, "malformed_json") from None


def parse_record(data: Any) -> Measurement:
    """Validate one decoded record into a Measurement, or raise MalformedRecord naming the field.

    msgspec checks the types against the record's annotations in C (docs/benchmarks.md §5:
    27 us a record with the body's decoding, against 90 for json.loads and the Python
    decoder). What it refuses is decoded again by ``Measurement.from_dict``, which names the
    field at fault as the SPEC's errors do; the two accept the same records
    (tests/collector/test_record_decoding.py).
    """
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        try:
            m = msgspec.convert(data, Measurement)
        except msgspec.ValidationError:
            pass
        else:
            check_semantics(m)
            return m
    return Measurement.from_dict(data)


def parse_batch(body: Any, max_records: int, probe_id: str) -> list[Measurement]:
    """Validate ``{"records": [...]}``: every record of schema 1, none claiming another probe."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise BatchError(400, "body: expected an object with a 'records' array", "schema")
    records = body["records"]
    if not records:
        raise BatchError(400, "records: the batch is empty", "schema")
    if len(records) > max_records:
        raise BatchError(
            413,
            f"records: {len(records)} records, more than the limit of {max_records} a batch",
            "too_large",
        )
    out = []
    for i, data in enumerate(records):
        try:
            # first the diagnostics' exact shape (the record type drops unknown keys, and names
            # the field less precisely), then the record
            diagnostics.check(data.get("diagnostics") if isinstance(data, dict) else None)
            m = parse_record(data)
        except MalformedRecord as e:
            raise BatchError(400, f"records[{i}].{e}", "schema") from None
        if m.probe.id is not None and m.probe.id != probe_id:
            raise BatchError(
                403,
                f"records[{i}].probe.id: {m.probe.id!r} is not the probe this token belongs to",
                "auth",
            )
        out.append(m)
    return out


def network_of(
    m: Measurement, probe: ProbeRow, looked_up: tuple[int, str | None] | None
) -> tuple[int | None, str | None]:
    """The network a record was measured on: the ASN database's answer when there is one,
    else what the record declares, else what the probe declared when it registered."""
    if looked_up is not None:
        return looked_up
    if m.probe.asn is not None or m.probe.network is not None:
        return m.probe.asn, m.probe.network
    return probe.declared_asn, probe.declared_network


WHOAMI_PREFIX_V4, WHOAMI_PREFIX_V6 = 24, 48


def resolver_network(
    whoami: str | None, asn: int | None, asn_of: AsnLookup | None
) -> dict[str, Any]:
    """Where the line's resolver asks from (the probe's whoami address): its ASN when the ASN
    database knows it, and whether that is the record's own network (``isp``) or another
    (``other``: a public resolver, a VPN's); empty when the probe sent no whoami."""
    if whoami is None:
        return {}
    whoami_asn = asn_of(whoami) if asn_of is not None else None  # an address (check_semantics)
    kind = None
    if whoami_asn is not None and asn is not None:
        kind = "isp" if whoami_asn == asn else "other"
    # a volunteer running their own recursive resolver would send their line's address: only
    # its prefix is kept, as for the source networks of registrations (docs/security.md)
    prefix = addresses.prefix_of(whoami, WHOAMI_PREFIX_V4, WHOAMI_PREFIX_V6)
    return {
        "whoami": str(prefix) if prefix else None,
        "whoami_asn": whoami_asn,
        "resolver_network": kind,
    }


def prepare_rows(
    records: list[Measurement],
    probe: ProbeRow,
    looked_up: tuple[int, str | None] | None,
    fingerprints: verdict.Fingerprints,
    asn_of: AsnLookup | None = None,
    now: datetime.datetime | None = None,
    submitted: list[dict[str, Any]] | None = None,
    network_of_address: NetworkLookup | None = None,
) -> list[MeasurementRow]:
    """Recompute each verdict (and each resolver path's) with the collector's fingerprints;
    keep the probe's beside it.

    ``submitted`` are the records as sent (``body["records"]`` of ``parse_batch``): each is
    stored as sent, its verdict and probe block replaced, instead of encoded again; its
    ``diagnostics`` (checked by ``parse_batch``) get the location's network from
    ``network_of_address`` (collector/diagnostics.py).
    """
    now = now or datetime.datetime.now(datetime.UTC)
    rows = []
    for i, m in enumerate(records):
        mine, paths = verdict.judge(m, m.control, fingerprints, asn_of=asn_of)
        asn, network = network_of(m, probe, looked_up)
        try:
            row = MeasurementRow.from_record(
                dataclasses.replace(m, verdict=mine, paths=paths),
                probe_id=probe.id,
                asn=asn,
                network=network,
                received_at=now,
                probe_verdict=m.verdict,
                submitted=None if submitted is None else _located(submitted[i], network_of_address),
                resolver=resolver_network(m.probe.whoami, asn, asn_of),
                declared_network=m.probe.network or probe.declared_network,
            )
        except ValueError as e:  # what the store cannot hold (a NUL, an ASN past 32 bits)
            column, _, why = str(e).partition(": ")
            field = ROW_FIELDS.get(column, column)
            raise BatchError(400, f"records[{i}].{field}: {why}", "schema") from None
        rows.append(row)
    return rows


def _located(submitted: dict[str, Any], lookup: NetworkLookup | None) -> dict[str, Any]:
    """The submitted record, its diagnosed location's network the ASN database's."""
    if submitted.get("diagnostics") is None:
        return submitted
    return {**submitted, "diagnostics": diagnostics.with_network(submitted["diagnostics"], lookup)}


# a stored column -> the record field it comes from, to name the field at fault
ROW_FIELDS = {
    "service": "target.service",
    "domain": "target.domain",
    "category": "target.category",
    "asn": "probe.asn",
    "network": "probe.network",
    "cc": "probe.cc",
    "probe_status": "verdict.status",
    "probe_method": "verdict.method",
    "probe_detail": "verdict.detail",
    "probe_blockpage": "verdict.blockpage",
}
