"""A record's ``diagnostics`` field (docs/spec.md, "Diagnostics at the collector"): strict
validation, the location's network from the collector's ASN database, the export's scalars.

The probe's diagnostics (injected DNS answers, the origin of a reset, the hop where interference
sits) are hostile input like the rest of a record: anything but the documented shape (an unknown
key, a wrong type, a list or a text too long, an integer out of range) makes the record malformed,
with a message naming the field (``diagnostics.location.hop: 0 is out of range (1 to 64)``).
Absent and null mean the same: not diagnosed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from probe.record import (
    DIAGNOSTIC_SKIPS,
    MAX_DIAGNOSTIC_ANSWERS,
    MAX_EVIDENCE_CHARS,
    MalformedRecord,
    json_kind,
)

SKIP_REASONS = DIAGNOSTIC_SKIPS  # one vocabulary with the probe's record type
DNS_RESULTS = ("on_path", "race", "none")  # in the order the aggregate gives them
RESET_RESULTS = ("server", "path", "unknown")
LOCATION_RESULTS = ("found", "not_found")
TRIGGERS = ("dns", "tls", "http")
MAX_ANSWERS = MAX_DIAGNOSTIC_ANSWERS  # injected answers kept per query
MAX_ANSWER_ADDRESSES = 32  # addresses of one DNS answer
MAX_NETWORK_CHARS = 200
MAX_RCODE_CHARS = 16  # "NOERROR", "NXDOMAIN", or a number for an unnamed rcode
MAX_COUNT = 2**31 - 1  # packets, malformed replies, milliseconds
MAX_ASN = 2**32 - 1
MAX_ADDRESS_CHARS = 45  # the longest text form of an IPv6 address (with an embedded IPv4)

TOP_KEYS = ("dns_injection", "reset_origin", "location", "packets", "malformed", "duration_ms")
DNS_KEYS = ("result", "queried", "answers")
ANSWER_KEYS = ("source", "ttl", "ip_id", "rcode", "addresses")
RESET_KEYS = ("result", "synack_ttl", "rst_ttl", "synack_ip_id", "rst_ip_id")
LOCATION_KEYS = ("result", "trigger", "hop", "address", "asn", "network", "evidence")

NetworkLookup = Callable[[str], "tuple[int, str | None] | None"]


class _Bad(Exception):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(why)
        self.path, self.why = path, why


def check(value: Any) -> None:
    """Raise MalformedRecord naming the field unless ``value`` is a record's ``diagnostics`` as
    docs/spec.md gives it: null, ``{"skipped": REASON}``, or a diagnosis."""
    try:
        _diagnostics(value)
    except _Bad as e:
        raise MalformedRecord(f"diagnostics{e.path}: {e.why}") from None


def is_valid(value: Any) -> bool:
    """Whether ``value`` passes ``check`` (for documents stored before the field was checked)."""
    try:
        _diagnostics(value)
    except _Bad:
        return False
    return True


def _diagnostics(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _Bad("", f"expected an object or null, got {json_kind(value)}")
    if "skipped" in value:
        _keys(value, ("skipped",), "")
        _choice(value["skipped"], SKIP_REASONS, ".skipped")
        return
    _keys(value, TOP_KEYS, "")
    _optional(value["dns_injection"], _dns_injection, ".dns_injection")
    _optional(value["reset_origin"], _reset_origin, ".reset_origin")
    _optional(value["location"], _location, ".location")
    for name in ("packets", "malformed", "duration_ms"):
        _int(value[name], 0, MAX_COUNT, f".{name}")


def _dns_injection(value: dict[str, Any], path: str) -> None:
    _keys(value, DNS_KEYS, path)
    _choice(value["result"], DNS_RESULTS, f"{path}.result")
    _address(value["queried"], f"{path}.queried")
    answers = value["answers"]
    _list(answers, MAX_ANSWERS, f"{path}.answers")
    for i, answer in enumerate(answers):
        where = f"{path}.answers[{i}]"
        _object(answer, where)
        _keys(answer, ANSWER_KEYS, where)
        _address(answer["source"], f"{where}.source")
        _int(answer["ttl"], 0, 255, f"{where}.ttl")
        _int(answer["ip_id"], 0, 65535, f"{where}.ip_id")
        _text(answer["rcode"], MAX_RCODE_CHARS, f"{where}.rcode")
        _list(answer["addresses"], MAX_ANSWER_ADDRESSES, f"{where}.addresses")
        for j, address in enumerate(answer["addresses"]):
            _address(address, f"{where}.addresses[{j}]")


def _reset_origin(value: dict[str, Any], path: str) -> None:
    _keys(value, RESET_KEYS, path)
    _choice(value["result"], RESET_RESULTS, f"{path}.result")
    for name, top in (("synack_ttl", 255), ("rst_ttl", 255), ("synack_ip_id", 65535),
                      ("rst_ip_id", 65535)):  # fmt: skip
        if value[name] is not None:
            _int(value[name], 0, top, f"{path}.{name}")


def _location(value: dict[str, Any], path: str) -> None:
    _keys(value, LOCATION_KEYS, path)
    _choice(value["result"], LOCATION_RESULTS, f"{path}.result")
    _choice(value["trigger"], TRIGGERS, f"{path}.trigger")
    if value["hop"] is not None:
        _int(value["hop"], 1, 64, f"{path}.hop")
    if value["address"] is not None:
        _address(value["address"], f"{path}.address")
    if value["asn"] is not None:
        _int(value["asn"], 0, MAX_ASN, f"{path}.asn")
    if value["network"] is not None:
        _text(value["network"], MAX_NETWORK_CHARS, f"{path}.network")
    _text(value["evidence"], MAX_EVIDENCE_CHARS, f"{path}.evidence")


def _optional(value: Any, check_object: Callable[[dict[str, Any], str], None], path: str) -> None:
    if value is None:
        return
    _object(value, path)
    check_object(value, path)


def _object(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise _Bad(path, f"expected an object, got {json_kind(value)}")


def _keys(value: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise _Bad(f"{path}.{unknown[0][:40]}", "unknown key")
    for k in keys:
        if k not in value:
            raise _Bad(f"{path}.{k}", "missing")


def _choice(value: Any, allowed: tuple[str, ...], path: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise _Bad(path, f"{json_kind(value)} is not one of {', '.join(allowed)}")


def _int(value: Any, low: int, high: int, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(path, f"expected an integer, got {json_kind(value)}")
    if not low <= value <= high:
        raise _Bad(path, f"{value} is out of range ({low} to {high})")


def _text(value: Any, most: int, path: str) -> None:
    if not isinstance(value, str):
        raise _Bad(path, f"expected a string, got {json_kind(value)}")
    if len(value) > most:
        raise _Bad(path, f"longer than {most} characters")
    # PostgreSQL's text refuses NUL, and a control character has no place in a label
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise _Bad(path, "contains a control character")


def _address(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _Bad(path, f"expected an IP address, got {json_kind(value)}")
    try:
        ipaddress.ip_address(value[: MAX_ADDRESS_CHARS + 1])
    except ValueError:
        raise _Bad(path, f"{value[:60]!r} is not an IP address") from None
    if len(value) > MAX_ADDRESS_CHARS or "%" in value:  # a scope id names a local interface
        raise _Bad(path, f"{value[:60]!r} is not an IP address")


def _list(value: Any, most: int, path: str) -> None:
    if not isinstance(value, list):
        raise _Bad(path, f"expected an array, got {json_kind(value)}")
    if len(value) > most:
        raise _Bad(path, f"more than {most} items")


def with_network(value: Any, lookup: NetworkLookup | None) -> Any:
    """Return checked ``diagnostics`` with the location's ``asn`` and ``network`` from the
    collector's ASN database (``lookup``), whatever the probe sent: null without a database,
    an address, or an answer."""
    location = value.get("location") if isinstance(value, dict) else None
    if location is None:
        return value
    address = location["address"]
    found = lookup(address) if lookup is not None and address is not None else None
    asn, network = found if found is not None else (None, None)
    return {**value, "location": {**location, "asn": asn, "network": network}}


def scalars(value: Any) -> dict[str, Any]:
    """The export's columns of a stored record's ``diagnostics`` (every one null when absent)."""
    d = value if isinstance(value, Mapping) else {}
    location = d.get("location") or {}
    return {
        "diag_skipped": d.get("skipped"),
        "diag_dns_injection": (d.get("dns_injection") or {}).get("result"),
        "diag_reset_origin": (d.get("reset_origin") or {}).get("result"),
        "diag_location_hop": location.get("hop"),
        "diag_location_address": location.get("address"),
        "diag_location_asn": location.get("asn"),
        "diag_location_network": location.get("network"),
    }
