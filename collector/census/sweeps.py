"""Sweeps in: the body of POST /api/v1/sweeps parsed into bounded types, and stored pending.

A request is judged whole: the first field at fault refuses it, with a message naming it
(``sweeps[0].entries[12].ip: ...``), so that nothing is half-stored. A stored sweep is its
document as parsed (addresses in their canonical spelling) with ``judged_at`` null: the address
judge (collector/census/judgement.py) owes it a judgement once acknowledged. Idempotent by sweep
id (docs/spec.md, "Sweeps").
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.store.probes import ProbeRow
from collector.store.schema import MAX_ASN, sweeps
from probe import failures
from probe.times import parse_rfc3339

MAX_SWEEPS = 10  # a request
MAX_ENTRIES = 1000  # a sweep
MAX_FAILURE_CHARS = 256
MAX_ENTRY_MS = 10 * 60 * 1000
# a sweep of 2,000 addresses at a few a second, with room: a cycle is an hour by default
MAX_SWEEP_MS = 24 * 3600 * 1000
# The one name a probe's neutral handshake uses (docs/spec.md): address blocking vs SNI filtering.
NEUTRAL_SNI = "www.example.com"

Failure = Annotated[str, msgspec.Meta(max_length=MAX_FAILURE_CHARS)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
# what a column keeps: PostgreSQL's text refuses NUL (the document, JSON, escapes it)
NO_NUL = "^[^\x00]*$"


class SweepProbe(msgspec.Struct, forbid_unknown_fields=True):
    """Who swept: the probe's id (the token's, or absent), its software and declared network."""

    id: str | None = None
    software: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    asn: Annotated[int, msgspec.Meta(ge=0, le=MAX_ASN)] | None = None
    network: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)] | None = None
    cc: Annotated[str, msgspec.Meta(min_length=2, max_length=2)] | None = None


class SweepEntry(msgspec.Struct, forbid_unknown_fields=True):
    """One address: TCP, then TLS with ``sni``, then with the neutral name; null is success,
    a failure string a failure, absent a step not run."""

    ip: Annotated[str, msgspec.Meta(max_length=45)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    sni: Name
    tcp: Failure | None
    ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_ENTRY_MS)]
    tls: Failure | msgspec.UnsetType | None = msgspec.UNSET
    tls_neutral: Failure | msgspec.UnsetType | None = msgspec.UNSET


class Sweep(msgspec.Struct, forbid_unknown_fields=True):
    """A probe's look at published addresses (docs/spec.md, "Sweeps")."""

    schema: Literal[1]
    id: Annotated[str, msgspec.Meta(max_length=36)]
    probe: SweepProbe
    started_at: Annotated[str, msgspec.Meta(max_length=64)]
    duration_ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_SWEEP_MS)]
    entries: Annotated[list[SweepEntry], msgspec.Meta(max_length=MAX_ENTRIES)]


class SweepBatch(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/sweeps."""

    sweeps: Annotated[list[Sweep], msgspec.Meta(min_length=1, max_length=MAX_SWEEPS)]


class SweepError(ValueError):
    """A request refused whole; ``status`` is the HTTP status to answer (400, 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """A sweep to store: its id, probe, network (as decided), times, and document."""

    id: str
    probe_id: str
    asn: int | None
    network: str | None
    started_at: datetime.datetime
    received_at: datetime.datetime
    entries: int
    doc: dict[str, Any]


_PATH = re.compile(r" - at `\$\.?(.*)`$")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ENCODER = msgspec.json.Encoder()


def parse(body: Any) -> SweepBatch:
    """Validate a decoded body into a SweepBatch, or raise SweepError naming the field."""
    try:
        batch = msgspec.convert(body, SweepBatch)
    except msgspec.ValidationError as e:
        raise SweepError(400, _named(str(e))) from None
    for i, sweep in enumerate(batch.sweeps):
        _check_sweep(sweep, f"sweeps[{i}]")
    return batch


def _named(message: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.sweeps[0].entries[3].port`" as the house
    does: "sweeps[0].entries[3].port: expected `int`, got `str`"."""
    found = _PATH.search(message)
    what = _PATH.sub("", message)
    what = what[:1].lower() + what[1:]
    if found is None or not found.group(1):
        return f"body: {what}"
    return f"{found.group(1)}: {what}"


def _check_sweep(sweep: Sweep, where: str) -> None:
    try:
        canonical = str(uuid.UUID(sweep.id))
    except ValueError:
        canonical = None
    if canonical != sweep.id:
        raise SweepError(400, f"{where}.id: expected a UUID in canonical form (lower-case, dashed)")
    try:
        parse_rfc3339(sweep.started_at)
    except ValueError as e:
        raise SweepError(400, f"{where}.started_at: {e}") from None
    for j, entry in enumerate(sweep.entries):
        _check_entry(entry, f"{where}.entries[{j}]")


def _check_entry(entry: SweepEntry, where: str) -> None:
    """Check an entry's address (canonicalised in place), name and failures."""
    try:
        entry.ip = str(ipaddress.ip_address(entry.ip))
    except ValueError:
        raise SweepError(400, f"{where}.ip: {entry.ip!r} is not an IP address") from None
    if not is_hostname(entry.sni):
        raise SweepError(400, f"{where}.sni: {entry.sni!r} is not a host name")
    for step in ("tcp", "tls", "tls_neutral"):
        value = getattr(entry, step)
        if isinstance(value, str) and not is_failure(value):
            raise SweepError(
                400, f"{where}.{step}: {value!r} is not a failure string (docs/spec.md)"
            )
    if entry.tcp is not None and entry.tls is not msgspec.UNSET:
        raise SweepError(400, f"{where}.tls: present after a TCP failure (the step is not run)")
    if not isinstance(entry.tls, str) and entry.tls_neutral is not msgspec.UNSET:
        raise SweepError(400, f"{where}.tls_neutral: present while tls did not fail")


def is_hostname(name: str) -> bool:
    """Tell whether ``name`` is a host name: letters, digits, hyphens; labels of 1-63."""
    if len(name) > 253 or not name.isascii():
        return False
    return all(_LABEL.fullmatch(label) for label in name.lower().split("."))


def is_failure(value: str) -> bool:
    """Tell whether ``value`` is a failure string records may hold (probe/failures.py)."""
    return value in failures.FAILURES or (
        value.startswith(failures.UNKNOWN_PREFIX) and len(value) <= MAX_FAILURE_CHARS
    )


def rows(
    batch: SweepBatch,
    probe: ProbeRow,
    looked_up: tuple[int, str | None] | None,
    now: datetime.datetime,
    max_age: datetime.timedelta,
    max_ahead: datetime.timedelta,
) -> list[SweepRow]:
    """Return the sweeps to store, each on the network records would be recorded on (the ASN
    database's answer, else the sweep's declaration, else the registration's); SweepError for
    a sweep of another probe (403) or dated out of bounds (400)."""
    out = []
    for i, s in enumerate(batch.sweeps):
        if s.probe.id is not None and s.probe.id != probe.id:
            message = f"sweeps[{i}].probe.id: {s.probe.id!r} is not the probe this token belongs to"
            raise SweepError(403, message)
        started = parse_rfc3339(s.started_at).astimezone(datetime.UTC)
        if started > now + max_ahead:
            raise SweepError(
                400, f"sweeps[{i}].started_at: in the future (more than {max_ahead} ahead)"
            )
        if started < now - max_age:
            raise SweepError(
                400, f"sweeps[{i}].started_at: older than the collector keeps ({max_age})"
            )
        asn, network = _network(s.probe, probe, looked_up)
        doc = msgspec.json.decode(_ENCODER.encode(s))
        doc["probe"]["id"] = probe.id
        out.append(SweepRow(s.id, probe.id, asn, network, started, now, len(s.entries), doc))
    return out


def _network(
    declared: SweepProbe, probe: ProbeRow, looked_up: tuple[int, str | None] | None
) -> tuple[int | None, str | None]:
    """As collector.ingest.network_of decides a record's network."""
    if looked_up is not None:
        return looked_up
    if declared.asn is not None or declared.network is not None:
        return declared.asn, declared.network
    return probe.declared_asn, probe.declared_network


def store(conn: sa.Connection, found: Sequence[SweepRow]) -> set[str]:
    """Insert the sweeps not stored yet, pending judgement (``judged_at`` null); return the
    ids of the new ones. In one transaction: acknowledged means owed a judgement."""
    if not found:
        return set()
    dialect = sa.dialects.postgresql if conn.dialect.name == "postgresql" else sa.dialects.sqlite
    values = [
        {
            "id": r.id,
            "probe_id": r.probe_id,
            "received_at": r.received_at,
            "started_at": r.started_at,
            "asn": r.asn,
            "network": r.network,
            "entries": r.entries,
            "judged_at": None,
            "doc": r.doc,
        }
        for r in sorted(found, key=lambda r: r.id)  # one lock order
    ]
    stmt = dialect.insert(sweeps).on_conflict_do_nothing(index_elements=["id"])
    new: set[str] = set()
    for v in values:  # a row at a time: what comes back is what was new
        new.update(conn.execute(stmt.returning(sweeps.c.id), v).scalars())
    return new
