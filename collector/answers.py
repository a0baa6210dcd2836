"""The JSON the HTTP API takes and answers, as types: the OpenAPI document's schemas come from here.

The record types are probe.record's (standard library dataclasses); what the standard library
cannot say of them (enums, formats, bounds) is in ``RECORD_RULES``. The answer types forbid
unknown keys, so that a live answer with a key the document does not list fails validation
(tests/collector/test_openapi_live.py validates live answers against the document).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import msgspec

from collector.census.sweeps import SweepBatch
from collector.census.targets import REASONS
from collector.store.filters import FLAG_STATES
from probe import record, watchlist
from probe.record import CATEGORIES, METHODS, STATUSES

Time = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Method = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(METHODS)})]
Category = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(CATEGORIES)})]
State = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(FLAG_STATES)})]
Count = Annotated[int, msgspec.Meta(ge=0)]
Asn = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    """An answer of the API: every key listed, none other."""


class Error(Answer):
    """The one shape of an error answer, with a 4xx or 5xx status."""

    error: Annotated[str, msgspec.Meta(description="what is wrong, naming the field at fault")]


class Health(Answer):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "none", "unavailable"]
    error: str | msgspec.UnsetType = msgspec.UNSET  # when degraded


class EvidenceKey(Answer):
    """The public key that signs evidence packages (collector/evidence.py)."""

    algorithm: Literal["Ed25519"]
    public_key_pem: Annotated[str, msgspec.Meta(description="SubjectPublicKeyInfo, PEM")]


class Registration(msgspec.Struct):
    """The body of POST /api/v1/probes (optional): the network the volunteer declares."""

    asn: Annotated[int, msgspec.Meta(ge=1)] | None = None
    network: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    enrollment_key: str | None = None


class Registered(Answer):
    probe_id: str
    token: Annotated[str, msgspec.Meta(description="the bearer token; shown once")]
    expires_at: Annotated[
        str, msgspec.Meta(description="RFC 3339: when the token expires; renew it before")
    ]


class Renewed(Registered):
    """The answer of POST /api/v1/probes/{probe_id}/token: the probe's new token; the one
    given stays valid for auth.token_grace (never past its own expiry)."""


class Batch(Answer):
    """The body of POST /api/v1/measurements."""

    records: list[record.Measurement]


class Stored(Answer):
    """A batch committed: ``inserted + duplicates == accepted``."""

    accepted: Count
    inserted: Count
    duplicates: Count


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoredMeasurement(record.Measurement):
    """A record as stored: the collector's verdict, the probe's beside it, the time it came."""

    received_at: Time
    probe_verdict: record.Verdict | None


class MeasurementPage(Answer):
    measurements: list[StoredMeasurement]
    next_cursor: Annotated[str | None, msgspec.Meta(description="null on the last page")]


Ip = Annotated[str, msgspec.Meta(description="an IP address", max_length=45)]
Ttl = Annotated[int, msgspec.Meta(ge=0, le=255)]
IpId = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class InjectedAnswer(Answer):
    source: Ip
    ttl: Ttl
    ip_id: IpId
    rcode: Annotated[str, msgspec.Meta(max_length=16)]
    addresses: Annotated[list[Ip], msgspec.Meta(max_length=32)]


class DnsInjection(Answer):
    """The blocked name asked of an address on the same path that runs no resolver: any
    answer is forged on the path (on_path); two answers to the DNS step's query, a race."""

    result: Literal["none", "on_path", "race"]
    queried: Ip
    answers: Annotated[list[InjectedAnswer], msgspec.Meta(max_length=8)]


class ResetOrigin(Answer):
    """The reset's IP TTL and IP-ID beside the SYN-ACK's: from the server, or a box on the path."""

    result: Literal["server", "path", "unknown"]
    synack_ttl: Ttl | None
    rst_ttl: Ttl | None
    synack_ip_id: IpId | None
    rst_ip_id: IpId | None


class Location(Answer):
    """The first hop where the blocked name meets interference and a control name does not."""

    result: Literal["found", "not_found"]
    trigger: Literal["dns", "tls", "http"]
    hop: Annotated[int, msgspec.Meta(ge=1, le=64)] | None
    address: Ip | None
    asn: Annotated[
        Asn | None, msgspec.Meta(description="the collector's ASN database's, never the probe's")
    ]
    network: Annotated[str, msgspec.Meta(max_length=200)] | None
    evidence: Annotated[str, msgspec.Meta(max_length=200)]


class Diagnosis(Answer):
    """A record's ``diagnostics`` when they ran (docs/spec.md, "Diagnostics at the collector")."""

    dns_injection: DnsInjection | None
    reset_origin: ResetOrigin | None
    location: Location | None
    packets: Count
    malformed: Count
    duration_ms: Count


class DiagnosisSkipped(Answer):
    skipped: Literal[
        "no_raw_socket", "scapy_missing", "unsupported_platform", "disabled", "interval", "budget"
    ]


class FlagLocation(Answer):
    hop: int | None
    address: Ip
    asn: Asn | None
    network: str | None
    probes: Annotated[int, msgspec.Meta(ge=2, description="probes that located it there")]


class FlagDiagnostics(Answer):
    """What the probes' diagnostics found over a flag's evidence, counted in probes (each by its
    latest diagnosis); ``location`` when at least two probes, and more than half of those that
    located the interference, name the same address."""

    probes: Annotated[int, msgspec.Meta(ge=0, description="probes with a diagnosis")]
    skipped: Annotated[int, msgspec.Meta(ge=0, description="probes whose diagnostics skipped")]
    dns_injection: dict[Literal["on_path", "race", "none"], Count]
    reset_origin: dict[Literal["server", "path", "unknown"], Count]
    location: FlagLocation | None


class Flag(Answer):
    id: str
    asn: Asn | None
    network: str | None
    service: str
    category: Category
    method: Method
    state: State
    first_seen: Time
    last_seen: Time
    closed_at: Time | None
    probes: Annotated[list[str], msgspec.Meta(description="probe ids")]
    networks: Annotated[
        int,
        msgspec.Meta(ge=1, description="distinct source networks of registration among the probes"),
    ]
    control: Annotated[
        Literal["collector", "probe"],
        msgspec.Meta(
            description="collector: the collector's own control reached the service before "
            "the flag opened; probe: only the probes' controls say it is up"
        ),
    ]
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]
    evidence: Annotated[list[str], msgspec.Meta(description="record ids")]
    resolver: Annotated[
        str,
        msgspec.Meta(
            pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$",
            description="the resolver path the flag was seen through: isp, the line's own "
            "resolver; else the path's name (google, quad9_doh)",
        ),
    ]
    scope: Annotated[
        Literal["network", "resolver"],
        msgspec.Meta(
            description="resolver: an open flag of a public path that is open on two networks "
            "or more and on every network whose probes looked through that path (that resolver "
            "blocks the service on every network); network: otherwise"
        ),
    ]
    diagnostics: FlagDiagnostics


class Flags(Answer):
    flags: list[Flag]


class Collateral(Answer):
    """An address blocked on a network, and every watched service behind it."""

    ip: str
    asn: Asn | None
    network: str | None
    services: list[str]
    first_seen: Time
    last_seen: Time


class CollateralAddresses(Answer):
    addresses: list[Collateral]


class CensusNetwork(Answer):
    """What one network blocks now: the addresses of its open address flags, the domains on
    them (the collateral, and the names marked intended apart), the watched services."""

    asn: Asn | None
    network: str | None
    blocked_addresses: Count
    collateral_domains: Count
    intended_domains: Count
    watched_services: Count
    since: Annotated[Time, msgspec.Meta(description="the earliest first_seen of the open flags")]


class Census(Answer):
    networks: list[CensusNetwork]
    generated_at: Time


class CensusAddress(Answer):
    """An address flag's (network, address), with the address's current domains."""

    ip: str
    asn: Asn | None
    network: str | None
    state: State
    first_seen: Time
    last_seen: Time
    domains: Count
    collateral_domains: Count
    intended_domains: Count
    services: Annotated[list[str], msgspec.Meta(description="watched service ids")]


class CensusAddresses(Answer):
    addresses: list[CensusAddress]


class CensusDomain(Answer):
    name: str
    rank: Annotated[int, msgspec.Meta(ge=1)] | None
    intended: bool
    current: Annotated[bool, msgspec.Meta(description="the name still resolves to the address")]
    first_seen: Time
    last_seen: Time


class AddressFlag(Answer):
    asn: Asn | None
    network: str | None
    method: Annotated[str, msgspec.Meta(extra_json_schema={"enum": ["tcp_ip", "tls"]})]
    state: State
    first_seen: Time
    last_seen: Time
    closed_at: Time | None
    evidence: Annotated[list[str], msgspec.Meta(description="sweep ids")]


class CensusAddressDetail(Answer):
    """One address: a page of the domains seen on it (best ranked first), its flags."""

    ip: str
    domains: list[CensusDomain]
    next_cursor: Annotated[str | None, msgspec.Meta(description="null on the last page")]
    networks: list[AddressFlag]


class CensusPoint(Answer):
    at: Annotated[Time, msgspec.Meta(description="the start of the bucket")]
    blocked_addresses: Count
    collateral_domains: Count
    intended_domains: Count


class CensusSeries(Answer):
    asn: Asn | None
    network: str | None
    points: list[CensusPoint]


class CensusHistory(Answer):
    step: Literal["hour", "day"]
    series: list[CensusSeries]


class Whoami(Answer):
    asn: Asn
    network: str | None


class ControlTarget(Answer):
    url: str
    addresses: Annotated[list[str], msgspec.Meta(max_length=32)] = []


class ControlRequest(Answer):
    """The body of POST /api/v1/control."""

    targets: Annotated[list[ControlTarget], msgspec.Meta(min_length=1)]


class ControlOf(Answer):
    url: str
    control: record.Control


class Controls(Answer):
    controls: list[ControlOf]


class AddressTarget(Answer):
    """An address probes should sweep: TCP to ip:port, then TLS with sni."""

    ip: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    sni: Annotated[str, msgspec.Meta(description="a name currently resolving to the address")]
    reasons: Annotated[
        list[Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(REASONS)})]],
        msgspec.Meta(min_length=1, description="why it is listed, in priority order"),
    ]
    domains: Annotated[int, msgspec.Meta(ge=0, description="current indexed names on it")]


class AddressTargets(Answer):
    addresses: list[AddressTarget]
    generated_at: Time


# the types whose schemas the document holds (and those they refer to)
TYPES = (
    Error, Health, EvidenceKey, Registration, Registered, Renewed, Batch, Stored,
    MeasurementPage, Flags, CollateralAddresses, Whoami, ControlRequest, Controls,
    watchlist.Watchlist, AddressTargets, SweepBatch, Census, CensusAddresses,
    CensusAddressDetail, CensusHistory, Diagnosis, DiagnosisSkipped,
)  # fmt: skip
# a record's ``diagnostics`` (absent from probe.record's types: collector/diagnostics.py checks it)
_DIAGNOSTICS: dict[str, Any] = {
    "description": "null: not diagnosed (absent in records of older probes)",
    "anyOf": [{"type": "null"}, {"$ref": "Diagnosis"}, {"$ref": "DiagnosisSkipped"}],
}

_VERDICT_METHOD: dict[str, Any] = {
    "enum": [*METHODS, None],
    "description": "null unless status is blocked",
}
_MEASUREMENT: dict[str, dict[str, Any]] = {
    "schema": {"enum": [record.SCHEMA]},
    "id": {"format": "uuid", "description": "made by the probe: the idempotency key"},
    "started_at": {"format": "date-time"},
    "duration_ms": {"minimum": 0},
}
# what probe.record's dataclasses say in code (record.check_semantics, Verdict), by component
RECORD_RULES: dict[str, dict[str, dict[str, Any]]] = {
    "Measurement": _MEASUREMENT,
    "StoredMeasurement": _MEASUREMENT,
    "Target": {"category": {"enum": list(CATEGORIES)}, "url": {"pattern": "^https?://"}},
    "Verdict": {"status": {"enum": list(STATUSES)}, "method": _VERDICT_METHOD},
    "Control": {"measured_at": {"format": "date-time"}},
    "Service": {"category": {"enum": list(CATEGORIES)}, "id": {"pattern": "^[a-z0-9_-]+$"}},
}


def schemas(ref_template: str) -> dict[str, Any]:
    """Return the JSON Schema (2020-12) of every type of ``TYPES``, by name, refined."""
    _, components = msgspec.json.schema_components(TYPES, ref_template=ref_template)
    for name, rules in RECORD_RULES.items():
        properties = components[name]["properties"]
        for field, extra in rules.items():
            properties[field] = {**properties[field], **extra}
    diagnostics = {
        **_DIAGNOSTICS,
        "anyOf": [
            {"$ref": ref_template.format(name=a["$ref"])} if "$ref" in a else a
            for a in _DIAGNOSTICS["anyOf"]
        ],
    }
    for name in ("Measurement", "StoredMeasurement"):
        components[name]["properties"].setdefault("diagnostics", diagnostics)
    return components
