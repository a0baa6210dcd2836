"""The schema-1 measurement record (docs/spec.md): dataclasses, JSON round trip, strict validation.

Standard library only. A failed measurement is data (a failure string in a result); a record that
does not follow the schema is a `MalformedRecord`, whose message names the field at fault
(``dns[0].rcode: expected a string, got 3``). Unknown keys are tolerated on input (SPEC: new keys
may be added) and dropped from the typed form.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from probe import times

SCHEMA = 1
# resolver paths a record may name (dns[].path, paths[]): each is judged on its own, so the
# work of judging a record grows with their number (a probe's default list has seven)
MAX_PATHS = 16

STATUSES = ("ok", "blocked", "down", "inconclusive")
METHODS = ("dns", "tcp_ip", "tls", "http_failure", "http_blockpage", "http_diff")
CATEGORIES = (
    "iptv_legal",
    "sports_legal",
    "vod",
    "music",
    "general",
    "cdn_collateral",
    "canary",
    "control",
)


class MalformedRecord(ValueError):
    """A record that does not follow schema 1; the message names the field and the reason."""


@dataclass(frozen=True)
class ProbeInfo:
    id: str | None = None
    software: str = ""
    asn: int | None = None
    network: str | None = None
    cc: str | None = None
    resolver: str | None = None
    # the primary resolver path's name: the dns[] results whose path it is drive the verdict
    path: str | None = None
    # the address the system resolver asks authoritative servers from (the whoami lookup)
    whoami: str | None = None


@dataclass(frozen=True)
class Target:
    service: str
    url: str
    domain: str
    category: str


@dataclass(frozen=True)
class EDE:
    """An Extended DNS Error option (RFC 8914)."""

    code: int
    text: str = ""


@dataclass(frozen=True)
class DNSResult:
    resolver: str
    qtype: str
    failure: str | None
    ms: float
    rcode: str | None = None
    answers: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)
    ede: list[EDE] = field(default_factory=list)
    transport: str = "udp"
    # answers of a second, different UDP reply to the same query: the mark of an on-path injector
    second_reply: list[str] | None = None
    # the domain this query was for (differs from target.domain on redirect hops)
    name: str | None = None
    # the resolver path's name (probe/resolvers.py); None in records of a single resolver
    path: str | None = None


@dataclass(frozen=True)
class TCPResult:
    ip: str
    port: int
    failure: str | None
    ms: float


@dataclass(frozen=True)
class TLSResult:
    ip: str
    port: int
    sni: str
    failure: str | None
    ms: float
    version: str | None = None
    cert_valid: bool | None = None
    # True when this handshake used a neutral SNI to tell SNI filtering from address blocking
    neutral: bool = False
    cert_subject: str | None = None
    cert_issuer: str | None = None
    cert_sha256: str | None = None


@dataclass(frozen=True)
class Redirect:
    url: str
    status: int
    location: str


@dataclass(frozen=True)
class HTTPResult:
    url: str
    failure: str | None
    ms: float
    status: int | None = None
    body_length: int | None = None
    body_sha256: str | None = None
    title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    redirects: list[Redirect] = field(default_factory=list)
    ip: str | None = None
    body_truncated: bool = False
    # the first bytes of the body (decoded), kept only for fingerprint matching
    body_head: str | None = None


@dataclass(frozen=True)
class Control:
    """The same steps run from the collector's vantage (POST /api/v1/control)."""

    dns: list[DNSResult] = field(default_factory=list)
    tcp: list[TCPResult] = field(default_factory=list)
    tls: list[TLSResult] = field(default_factory=list)
    http: HTTPResult | None = None
    failure: str | None = None
    measured_at: str | None = None


@dataclass(frozen=True)
class Verdict:
    status: str
    method: str | None = None
    detail: str | None = None
    blockpage: str | None = None

    def __post_init__(self) -> None:
        _check_verdict(self.status, self.method)


@dataclass(frozen=True)
class PathVerdict:
    """The verdict of one resolver path: the record's rules, on that path's DNS answers."""

    path: str
    transport: str
    resolver: str
    status: str
    method: str | None = None
    detail: str | None = None
    blockpage: str | None = None

    def __post_init__(self) -> None:
        _check_verdict(self.status, self.method)


def _check_verdict(status: str, method: str | None) -> None:
    if status not in STATUSES:
        raise MalformedRecord(f"status: {status!r} is not one of {STATUSES}")
    if status == "blocked" and method not in METHODS:
        raise MalformedRecord(f"method: {method!r} is not one of {METHODS}")
    if status != "blocked" and method is not None:
        raise MalformedRecord("method: must be null unless status is 'blocked'")


# diagnostics (docs/spec.md, "Diagnostics"): why a blocked target was not diagnosed
DIAGNOSTIC_SKIPS = (
    "no_raw_socket", "scapy_missing", "unsupported_platform", "disabled", "interval", "budget",
)  # fmt: skip
MAX_DIAGNOSTIC_ANSWERS = 8
MAX_EVIDENCE_CHARS = 200


@dataclass(frozen=True)
class InjectedAnswer:
    """One DNS reply heard from an address that runs no resolver: who sent it and how."""

    source: str
    ttl: int
    ip_id: int
    rcode: str
    addresses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_address(self.source, "source")
        _check_range(self.ttl, 0, 255, "ttl")
        _check_range(self.ip_id, 0, 65535, "ip_id")
        if len(self.rcode) > 16:
            raise MalformedRecord("rcode: longer than 16 characters")
        if len(self.addresses) > MAX_DIAGNOSTIC_ANSWERS:
            raise MalformedRecord(f"addresses: more than {MAX_DIAGNOSTIC_ANSWERS}")
        for a in self.addresses:
            _check_address(a, "addresses")


@dataclass(frozen=True)
class DNSInjection:
    result: str  # none | on_path | race
    queried: str
    answers: list[InjectedAnswer] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_choice(self.result, ("none", "on_path", "race"), "result")
        _check_address(self.queried, "queried")
        if len(self.answers) > MAX_DIAGNOSTIC_ANSWERS:
            raise MalformedRecord(f"answers: more than {MAX_DIAGNOSTIC_ANSWERS}")


@dataclass(frozen=True)
class ResetOrigin:
    result: str  # server | path | unknown
    synack_ttl: int | None = None
    rst_ttl: int | None = None
    synack_ip_id: int | None = None
    rst_ip_id: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self.result, ("server", "path", "unknown"), "result")
        for name, high in (("synack_ttl", 255), ("rst_ttl", 255),
                           ("synack_ip_id", 65535), ("rst_ip_id", 65535)):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                _check_range(value, 0, high, name)


@dataclass(frozen=True)
class Location:
    result: str  # found | not_found
    trigger: str  # dns | tls | http
    hop: int | None = None
    address: str | None = None
    asn: int | None = None  # filled by the collector (its ASN database); null from the probe
    network: str | None = None
    evidence: str = ""

    def __post_init__(self) -> None:
        _check_choice(self.result, ("found", "not_found"), "result")
        _check_choice(self.trigger, ("dns", "tls", "http"), "trigger")
        if self.hop is not None:
            _check_range(self.hop, 1, 64, "hop")
        if self.address is not None:
            _check_address(self.address, "address")
        if self.asn is not None:
            _check_range(self.asn, 0, 2**32 - 1, "asn")
        if self.network is not None and len(self.network) > MAX_EVIDENCE_CHARS:
            raise MalformedRecord(f"network: longer than {MAX_EVIDENCE_CHARS} characters")
        if len(self.evidence) > MAX_EVIDENCE_CHARS:
            raise MalformedRecord(f"evidence: longer than {MAX_EVIDENCE_CHARS} characters")


@dataclass(frozen=True)
class Diagnostics:
    """What the raw-socket diagnostics found for a blocked target, or why they did not run.

    On the wire a skipped diagnosis is ``{"skipped": REASON}`` and nothing else; a run one has
    every key but ``skipped`` (each of the three findings null when it does not apply).
    """

    skipped: str | None = None
    dns_injection: DNSInjection | None = None
    reset_origin: ResetOrigin | None = None
    location: Location | None = None
    packets: int = 0
    malformed: int = 0
    duration_ms: int = 0

    def __post_init__(self) -> None:
        if self.skipped is not None:
            _check_choice(self.skipped, DIAGNOSTIC_SKIPS, "skipped")
        for name in ("packets", "malformed", "duration_ms"):
            _check_range(getattr(self, name), 0, 2**31 - 1, name)

    def wire(self) -> dict[str, Any]:
        """Return the JSON object of docs/spec.md (the skipped form has one key)."""
        if self.skipped is not None:
            return {"skipped": self.skipped}
        return {
            "dns_injection": encode(self.dns_injection),
            "reset_origin": encode(self.reset_origin),
            "location": encode(self.location),
            "packets": self.packets,
            "malformed": self.malformed,
            "duration_ms": self.duration_ms,
        }


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise MalformedRecord(f"{name}: {value[:40]!r} is not one of {choices}")


def _check_range(value: int, low: int, high: int, name: str) -> None:
    if not low <= value <= high:
        raise MalformedRecord(f"{name}: {value} is not in {low}..{high}")


def _check_address(value: str, name: str) -> None:
    if not _is_address(value):
        raise MalformedRecord(f"{name}: {value[:60]!r} is not an IP address")


@dataclass(frozen=True)
class Measurement:
    id: str
    probe: ProbeInfo
    target: Target
    started_at: str
    duration_ms: float
    dns: list[DNSResult] = field(default_factory=list)
    tcp: list[TCPResult] = field(default_factory=list)
    tls: list[TLSResult] = field(default_factory=list)
    http: HTTPResult | None = None
    control: Control | None = None
    verdict: Verdict | None = None
    # one verdict per resolver path, the primary first; empty with a single resolver
    paths: list[PathVerdict] = field(default_factory=list)
    # null unless the verdict is "blocked" (docs/spec.md, "Diagnostics")
    diagnostics: Diagnostics | None = None
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON-able values, with ``schema`` first."""
        return encode(self)

    def to_json(self) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Measurement:
        """Validate a decoded JSON value and build a Measurement, or raise MalformedRecord."""
        if not isinstance(data, dict):
            raise MalformedRecord(f"record: expected an object, got {json_kind(data)}")
        if data.get("schema") != SCHEMA:
            raise MalformedRecord(f"schema: expected {SCHEMA}, got {data.get('schema')!r}")
        m = decode(cls, data, "")
        check_semantics(m)
        return m

    @classmethod
    def from_json(cls, text: str | bytes) -> Measurement:
        """Parse one JSON document into a Measurement, or raise MalformedRecord."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MalformedRecord(f"record: not valid JSON ({e})") from None
        return cls.from_dict(data)


def new_id() -> str:
    """Return a random record id (UUID4): the idempotency key, not tied to anyone."""
    return str(uuid.uuid4())


def check_semantics(m: Measurement) -> None:
    """Raise MalformedRecord for what the types allow and schema 1 does not (id, url, times)."""
    try:
        canonical = str(uuid.UUID(m.id))
    except ValueError:
        raise MalformedRecord(f"id: {m.id!r} is not a UUID") from None
    if m.id != canonical:  # one record, one spelling: ids are compared and stored as text
        raise MalformedRecord(f"id: {m.id!r} is not in canonical form ({canonical!r})")
    if m.target.category not in CATEGORIES:
        raise MalformedRecord(f"target.category: {m.target.category!r} is not one of {CATEGORIES}")
    if not m.target.url.startswith(("http://", "https://")):
        raise MalformedRecord(f"target.url: {m.target.url!r} is not an http or https URL")
    if m.duration_ms < 0:
        raise MalformedRecord("duration_ms: must not be negative")
    if len({r.path for r in m.dns if r.path is not None}) > MAX_PATHS:
        raise MalformedRecord(f"dns: more than {MAX_PATHS} resolver paths")
    if len(m.paths) > MAX_PATHS:
        raise MalformedRecord(f"paths: more than {MAX_PATHS} resolver paths")
    if m.probe.whoami is not None and not _is_address(m.probe.whoami):
        raise MalformedRecord(f"probe.whoami: {m.probe.whoami[:60]!r} is not an IP address")
    _check_time(m.started_at, "started_at")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_time(value: str, path: str) -> None:
    try:
        times.parse_rfc3339(value)
    except times.MissingZone:
        why = "has no time zone (RFC 3339 UTC expected)"
        raise MalformedRecord(f"{path}: {value!r} {why}") from None
    except ValueError:
        raise MalformedRecord(f"{path}: {value!r} is not an RFC 3339 time") from None


def encode(obj: Any) -> Any:
    """Turn a record dataclass (or a list or dict of them) into plain JSON-able values."""
    if isinstance(obj, Diagnostics):
        return obj.wire()
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _field_names(kind)
    if names is not None:
        return {name: encode(getattr(obj, name)) for name in names}
    if isinstance(obj, list):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj


# what encode passes through as it is, looked up by exact type (a subclass takes the long way)
_SCALARS = frozenset({str, int, float, bool, type(None)})
# a dataclass's field names, ``schema`` first: found once per class, not once per object (a
# record has about a hundred objects, and every record of a cycle is encoded)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = [f.name for f in dataclasses.fields(kind)]
    if "schema" in names:
        names.remove("schema")
        names.insert(0, "schema")
    _FIELD_NAMES[kind] = tuple(names)
    return _FIELD_NAMES[kind]


def json_kind(value: Any) -> str:
    """Name a decoded JSON value's type, with a glimpse of a scalar: for error messages."""
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return (
        f"{names.get(type(value), type(value).__name__)} ({json.dumps(value)[:40]})"
        if not isinstance(value, dict | list)
        else names[type(value)]
    )


class _Bad(Exception):
    """A value at fault below the point being decoded: ``path`` grows as it rises."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path, self.why = path, why


Decoder = Callable[[Any], Any]


def decode(tp: Any, value: Any, path: str) -> Any:
    """Decode ``value`` as type ``tp`` (a dataclass, list, dict, optional or scalar), strictly."""
    try:
        return _decoder(tp)(value)
    except _Bad as e:
        where = f"{path}{e.path}".lstrip(".")
        raise MalformedRecord(f"{where or 'record'}: {e.why}") from None


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """Compile, once per type, the function that checks and builds values of ``tp``.

    Paths are built only on the way up from an error: a valid record pays no string work.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _optional(_decoder(inner))
    if origin is list:
        return _array(_decoder(typing.get_args(tp)[0]))
    if origin is dict:
        return _mapping(_decoder(typing.get_args(tp)[1]))
    if dataclasses.is_dataclass(tp):
        return _record(tp)
    return _scalar(tp)


def _optional(inner: Decoder) -> Decoder:
    return lambda v: None if v is None else inner(v)


def _array(item: Decoder) -> Decoder:
    def run(v: Any) -> list[Any]:
        if not isinstance(v, list):
            raise _Bad("", f"expected an array, got {json_kind(v)}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except _Bad as e:
                raise _Bad(f"[{i}]{e.path}", e.why) from None
        return out

    return run


def _mapping(item: Decoder) -> Decoder:
    def run(v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise _Bad("", f"expected an object, got {json_kind(v)}")
        out = {}
        for k, x in v.items():
            try:
                out[str(k)] = item(x)
            except _Bad as e:
                raise _Bad(f".{k}{e.path}", e.why) from None
        return out

    return run


def _record(tp: Any) -> Decoder:
    hints = typing.get_type_hints(tp)
    fields = [
        (f.name, _decoder(hints[f.name]),
         f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(tp)
    ]  # fmt: skip

    def run(v: Any) -> Any:
        if not isinstance(v, dict):
            raise _Bad("", f"expected an object, got {json_kind(v)}")
        kwargs = {}
        for name, dec, required in fields:
            if name not in v:
                if required:
                    raise _Bad(f".{name}", "missing")
                continue
            try:
                kwargs[name] = dec(v[name])
            except _Bad as e:
                raise _Bad(f".{name}{e.path}", e.why) from None
        try:
            return tp(**kwargs)
        except MalformedRecord as e:  # a rule of the type itself ("status: ... is not one of")
            sub, _, why = str(e).partition(": ")
            raise _Bad(f".{sub}", why) from None

    return run


_WANT = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def _scalar(tp: Any) -> Decoder:
    if tp is float:

        def ok(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)
    elif tp is int:

        def ok(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)
    else:

        def ok(v: Any) -> bool:
            return isinstance(v, tp)

    def run(v: Any) -> Any:
        if not ok(v):
            raise _Bad("", f"expected {_WANT[tp]}, got {json_kind(v)}")
        return v

    return run
