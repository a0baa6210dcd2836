"""The tables the store queries, one definition for SQLite and PostgreSQL (head of the migrations).

Alembic revisions under ``migrations/versions`` are frozen copies of this shape; a test compares
the migrated database with this module. No column holds the address a submission came from: the
``ip`` columns of the collateral tables hold the public addresses of watched services.
"""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any

import msgspec
import sqlalchemy as sa

from collector import observation

UTC = datetime.UTC

# Named constraints, so that later revisions (batch mode on SQLite) can alter them by name.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime.datetime]):
    """An aware datetime stored in UTC: timestamptz on PostgreSQL, fixed-width text on SQLite.

    SQLite keeps ``YYYY-MM-DD HH:MM:SS.ffffff`` without an offset, so every value is converted
    to UTC first: the text then sorts in time order, and comparisons agree with PostgreSQL's.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime.datetime) or value.tzinfo is None:
            raise ValueError(f"time: {value!r} is not an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(sa.TypeDecorator[dict[str, Any]]):
    """A JSON object kept as text, byte for byte the same on both dialects.

    Not PostgreSQL's jsonb: it rejects ``\\u0000``, which a probe may legitimately report in a
    page title, and it would reorder keys. Encoded and decoded by msgspec, in C (ingest stores
    thousands a second, docs/benchmarks.md §5): compact, UTF-8 unescaped, as json.dumps with
    ``separators=(",", ":"), ensure_ascii=False`` writes it but for the spelling of some floats
    (``1.5e-7`` for ``1.5e-07``), which read back the same.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None or isinstance(value, str):  # text: encoded already (document_text)
            return value
        return document_text(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return _DECODER.decode(value)
        except msgspec.DecodeError:  # a document stored by an earlier version (NaN, say)
            return json.loads(value)


def document_text(value: dict[str, Any]) -> str:
    """A document as JSONText stores it; a row may carry it encoded, so that the encoding is
    done before the writer's turn (SQLite's one writer waits for no encoding)."""
    return _ENCODER.encode(value).decode()


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class JSONList(sa.TypeDecorator[list[Any]]):
    """A JSON array kept as text (probe ids, record ids), like JSONText."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(list(value), separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> list[Any] | None:
        return None if value is None else json.loads(value)


MAX_ASN = 2**32 - 1


def check_text(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or text both dialects can hold.

    PostgreSQL's text type refuses NUL characters; SQLite would keep them. Refusing them on both
    keeps the two backends interchangeable and turns a database error into a 4xx.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected a string, got {value!r}")
    if "\x00" in value:
        raise ValueError(f"{path}: contains a NUL character")


def check_asn(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or a 32-bit AS number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ASN:
        raise ValueError(f"{path}: {value!r} is not an AS number (0 to {MAX_ASN})")


def check_time(path: str, value: object) -> None:
    """Raise ValueError naming ``path`` unless ``value`` is None or an aware datetime."""
    if value is None:
        return
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        raise ValueError(f"{path}: {value!r} is not an aware datetime")


@functools.lru_cache(maxsize=4096)
def network_key(asn: int | None, network: str | None) -> str:
    """Spell a network (either part may be null) as one non-null text, for keys and locks."""
    return json.dumps([asn, network], separators=(",", ":"), ensure_ascii=False)


metadata = sa.MetaData(naming_convention=NAMING)
# The resolver path of the line's own resolver, as flags, looks and marks name it.
ISP = "isp"
# AS numbers are BigInteger: 32-bit unsigned (RFC 6793) overflows PostgreSQL's integer.

probes = sa.Table(
    "probes",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("declared_asn", sa.BigInteger),
    sa.Column("declared_network", sa.Text),
    sa.Column("last_seen_at", UTCDateTime),
    sa.Column("last_asn", sa.BigInteger),
    sa.Column("last_network", sa.Text),
    # a token expires; a renewed token's predecessor stays valid until old_token_expires_at
    sa.Column("token_expires_at", UTCDateTime),
    sa.Column("old_token_hash", sa.Text, unique=True),
    sa.Column("old_token_expires_at", UTCDateTime),
    # The network a probe registered from, as the flags count sources: its ASN, or a keyed hash
    # of its /24 or /48 (collector/sources.py); never the address. Null: registered before.
    sa.Column("source", sa.Text),
    # Set by the operator (`surblocage-collector probes revoke`): the token is refused and the
    # probe's records count in no flag.
    sa.Column("revoked_at", UTCDateTime),
)

# The collector's own secrets, by name: the key of the source hashes, made once, shared by every
# process of the database.
collector_keys = sa.Table(
    "collector_keys",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("cc", sa.Text),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("domain", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("method", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("blockpage", sa.Text),
    sa.Column("probe_status", sa.Text),
    sa.Column("probe_method", sa.Text),
    sa.Column("probe_detail", sa.Text),
    sa.Column("probe_blockpage", sa.Text),
    sa.Column("doc", JSONText, nullable=False),
)

# Every filter leads an index that ends in the order (started_at, id): a filtered page is one
# index range scan, without a sort.
sa.Index(None, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.service, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.domain, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.asn, measurements.c.started_at, measurements.c.id)
sa.Index(None, measurements.c.network, measurements.c.started_at, measurements.c.id)
sa.Index(
    None,
    measurements.c.status,
    measurements.c.method,
    measurements.c.started_at,
    measurements.c.id,
)
sa.Index(None, measurements.c.probe_id, measurements.c.started_at, measurements.c.id)
# "blocked by method M on network N" (the research API's asn filter): without it PostgreSQL
# scans status/method and filters by asn (298-404 ms at the 99th percentile at 10 M records,
# docs/benchmarks.md §5; revision 0005)
sa.Index(
    None,
    measurements.c.asn,
    measurements.c.status,
    measurements.c.method,
    measurements.c.started_at,
    measurements.c.id,
)
# The judge reads what arrived lately (flags reflect every acknowledged batch).
sa.Index(None, measurements.c.received_at)
# The blocked records of one (network, service) pair, newest first (collector/judge/judgement.py).
sa.Index(
    None,
    measurements.c.service,
    measurements.c.asn,
    measurements.c.network,
    measurements.c.status,
    measurements.c.started_at,
    measurements.c.id,
)

# Findings, kept by the judge (collector/judge). A network is (asn, network), either of which may
# be null; ``network_key`` spells the pair as one non-null text (JSON [asn, network]) so that it
# can lead a primary key.
flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("network_key", sa.Text, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("probes", JSONList, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("evidence", JSONList, nullable=False),
    sa.Column("fingerprinted", sa.Boolean, nullable=False),
    # distinct source networks of registration among the supporting probes
    sa.Column("networks", sa.Integer, nullable=False, server_default="1"),
    # "collector": the collector's control vantage reached the service before the flag opened;
    # "probe": only the probes' own controls did (no vantage, or no URL for the service)
    sa.Column("control", sa.Text, nullable=False, server_default="probe"),
    # the resolver path the flag was seen through (collector/judge/paths.py): "isp" for the
    # line's own resolver (every flag stored before paths were judged), else the path's name
    sa.Column("resolver", sa.Text, nullable=False, server_default=ISP),
)
# The current flags of a (network, service) pair, read under the pair's lock at every batch.
sa.Index(None, flags.c.network_key, flags.c.service, flags.c.method, flags.c.first_seen)
# At most one open flag per (network, service, resolver, method), whatever a concurrent writer
# does.
sa.Index(
    "ix_flags_open_once",
    flags.c.network_key,
    flags.c.service,
    flags.c.resolver,
    flags.c.method,
    unique=True,
    sqlite_where=flags.c.state == "open",
    postgresql_where=flags.c.state == "open",
)
# The API's filters, each ending in the listing order.
for _column in (
    "asn", "network", "service", "category", "method", "state", "first_seen", "resolver"
):  # fmt: skip
    sa.Index(None, flags.c[_column], flags.c.last_seen)
sa.Index(None, flags.c.last_seen)

service_addresses = sa.Table(
    "service_addresses",
    metadata,
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)
sa.Index(None, service_addresses.c.ip)

# The SQL type of each Python type an observation's field has (collector/observation.py).
OBSERVATION_TYPES: dict[type, Any] = {
    str: sa.Text,
    int: sa.BigInteger,  # AS numbers
    datetime.datetime: UTCDateTime,
}


def observation_columns(*, nullable: bool = False, leave_out: tuple[str, ...] = ()) -> list[Any]:
    """Return a column for each field of an observation but ``leave_out``: null where the field
    may be, or everywhere when ``nullable``."""
    return [
        sa.Column(f.name, OBSERVATION_TYPES[f.python_type], nullable=nullable or f.optional)
        for f in observation.FIELDS
        if f.name not in leave_out
    ]


# The latest ok-or-blocked look of each probe at each service on each network: what the flag rules
# read of records that are not blocked, in one row a probe instead of every record of two days.
latest_looks = sa.Table(
    "latest_looks",
    metadata,
    sa.Column("network_key", sa.Text, nullable=False),
    *observation_columns(),
    # the resolver path of the look: one look a probe a path
    sa.Column("resolver", sa.Text, nullable=False, server_default=ISP),
    sa.PrimaryKeyConstraint("service", "network_key", "resolver", "probe_id"),
)

# Every blocked look through each resolver path of the last days (the primary path's and the
# others'), with the time its record was received: the evidence the flag rules weigh, written
# in the batch's transaction (collector/judge/pending.py) and pruned by the judge past its window.
blocked_looks = sa.Table(
    "blocked_looks",
    metadata,
    sa.Column("network_key", sa.Text, nullable=False),
    sa.Column("resolver", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    *observation_columns(),
    sa.PrimaryKeyConstraint("record_id", "resolver"),
)
# A pair's blocked looks, newest first (collector/judge/judgement.py); the prune's range.
sa.Index(
    None,
    blocked_looks.c.network_key,
    blocked_looks.c.service,
    blocked_looks.c.resolver,
    blocked_looks.c.started_at,
)
sa.Index(None, blocked_looks.c.started_at)

blocked_addresses = sa.Table(
    "blocked_addresses",
    metadata,
    sa.Column("network_key", sa.Text, primary_key=True),
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)

# Pairs (network, service) stored records have touched and the judge has not judged since:
# written in the batch's own transaction (acknowledged means durable), drained by the judge
# (collector/judge/judgement.py) after the acknowledgement. One row a pair a batch, with the
# batch's newest decisive look of the pair (its observation columns null: none), which the judge
# applies to latest_looks batch after batch, judging each batch in turn as if alone. ``seq``
# orders them, and the judge deletes only the rows it read, so that a pair marked again meanwhile
# is judged again. ``batch`` names the batch (its least new record id). INTEGER on SQLite: the
# rowid.
pending_pairs = sa.Table(
    "pending_pairs",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("batch", sa.Text, nullable=False),
    sa.Column("network_key", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    *observation_columns(nullable=True, leave_out=("service",)),
    sa.Column("resolver", sa.Text, nullable=False, server_default=ISP),
)

# The collateral census (collector/census). The domain index: every name imported (Tranco-style
# lists), its rank, and whether blocking orders target it (``intended``: counted apart from the
# collateral). ``resolved_at`` is the latest resolution from the collector's vantage (null: never
# resolved); an address is a domain's current one while its row's ``last_seen`` equals that time.
# Names get integer ids: a million names, and the address rows that point at them, stay small.
domains = sa.Table(
    "domains",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("rank", sa.BigInteger),
    sa.Column("intended", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("added_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
)
# The refresh resolves the names resolved longest ago first (never resolved: first of all).
sa.Index(None, domains.c.resolved_at)

# Address <-> domain as the collector's resolutions saw it: a census of last month stays true
# after the names move. One row a (domain, address), widened at each resolution that answers it.
domain_addresses = sa.Table(
    "domain_addresses",
    metadata,
    sa.Column("domain_id", sa.BigInteger, primary_key=True),
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)
# "every domain on these addresses", the census's one big read
sa.Index(None, domain_addresses.c.ip, domain_addresses.c.domain_id, domain_addresses.c.last_seen)

# Sweeps: a probe's compact look at the published addresses (one entry an address: TCP, then TLS
# with the given SNI, then with a neutral SNI), stored as sent. ``judged_at`` null: not judged
# yet by the address judge (collector/census).
sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("judged_at", UTCDateTime),
    sa.Column("doc", JSONText, nullable=False),
)
sa.Index(None, sweeps.c.probe_id, sweeps.c.started_at)
sa.Index(None, sweeps.c.judged_at, sweeps.c.received_at)

# The collector's own look at each published address (TCP, then TLS with the SNI or a neutral
# one): an address unreachable from here as well is down, not blocked. ``failure`` null:
# reachable.
address_vantage = sa.Table(
    "address_vantage",
    metadata,
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("sni", sa.Text),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("failure", sa.Text),
)

# Address flags: an address blocked on a network (by TCP, or TLS cut for every name), with the
# lifecycle of the service flags (collector/judge/rules.py). ``evidence`` holds sweep ids. A
# reopened flag is a new row; the current one of (network, ip, method) has the latest first_seen.
address_flags = sa.Table(
    "address_flags",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("network_key", sa.Text, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("ip", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("probes", JSONList, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("evidence", JSONList, nullable=False),
    sa.Column("networks", sa.Integer, nullable=False, server_default="1"),
)
sa.Index(
    None,
    address_flags.c.network_key,
    address_flags.c.ip,
    address_flags.c.method,
    address_flags.c.first_seen,
)
sa.Index(
    "ix_address_flags_open_once",
    address_flags.c.network_key,
    address_flags.c.ip,
    address_flags.c.method,
    unique=True,
    sqlite_where=address_flags.c.state == "open",
    postgresql_where=address_flags.c.state == "open",
)
sa.Index(None, address_flags.c.state, address_flags.c.network_key)
sa.Index(None, address_flags.c.ip, address_flags.c.first_seen)

# The address judge's memory (collector/census/judgement.py), so that a sweep is judged without
# reading every sweep again. The latest ok-or-blocked look of each probe at each address on each
# network (what the rules read of the looks that reach an address, and of other networks)...
address_looks = sa.Table(
    "address_looks",
    metadata,
    sa.Column("network_key", sa.Text, primary_key=True),
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, primary_key=True),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("sweep_id", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("method", sa.Text),
)
sa.Index(None, address_looks.c.ip, address_looks.c.started_at)

# ... and every blocked look of the last days (pruned by the judge): the evidence of the flags.
address_blocked_looks = sa.Table(
    "address_blocked_looks",
    metadata,
    sa.Column("network_key", sa.Text, primary_key=True),
    sa.Column("ip", sa.Text, primary_key=True),
    sa.Column("sweep_id", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, nullable=False),
    sa.Column("asn", sa.BigInteger),
    sa.Column("network", sa.Text),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
)
sa.Index(None, address_blocked_looks.c.started_at)

# Learned block signatures (collector/judge/learned.py): how a resolver path of a network answers
# names blocked by order. One row per (network, path, answer, positive control, probe): what the
# learning counts; the record id is the latest that showed it.
signature_observations = sa.Table(
    "signature_observations",
    metadata,
    sa.Column("asn", sa.BigInteger, primary_key=True),
    sa.Column("resolver", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("service", sa.Text, primary_key=True),
    sa.Column("probe_id", sa.Text, primary_key=True),
    sa.Column("network", sa.Text),
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)

# ... and the signatures learned from them. ``id`` is derived from (asn, resolver, kind, value),
# so a signature keeps its name in every database; ``evidence`` holds at most 20 record ids;
# a signature the control itself answers is retired (``retired_at``) and never learned again.
learned_signatures = sa.Table(
    "learned_signatures",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("asn", sa.BigInteger, nullable=False),
    sa.Column("network", sa.Text),
    sa.Column("resolver", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("probes", sa.Integer, nullable=False),
    sa.Column("controls", sa.Integer, nullable=False),
    sa.Column("evidence", JSONList, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("retired_at", UTCDateTime),
)
sa.Index(None, learned_signatures.c.kind, learned_signatures.c.value)
sa.Index(None, learned_signatures.c.asn, learned_signatures.c.resolver)
