"""The census's address list (docs/spec.md, "Address targets") parsed into bounded types.

The list comes from the network: every item is checked (an address, a port 1-65535, a host
name for the SNI) and a bad one is skipped and counted, never a crash. The probe's address
policy (probe/addresses.py) applies: a published address that is not public is never dialled
unless allowed, and is left out of the sweep (counted). At most ``max_addresses`` are kept, in
the published order (the collector's priority); a repeated ip and port is kept once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe import addresses, watchlist

MAX_IP_CHARS = 45  # the longest textual IPv6 address (with an embedded IPv4)


class MalformedList(ValueError):
    """The collector's answer is not an address list at all."""


@dataclass(frozen=True, slots=True)
class Address:
    """One address to sweep: where to connect, and the name its handshake presents."""

    ip: str
    port: int
    sni: str


@dataclass(frozen=True)
class AddressList:
    """The addresses of one sweep, and how many items were left out and why."""

    addresses: tuple[Address, ...]
    malformed: int = 0  # not an address, a port or a host name
    not_public: int = 0  # left out by the address policy
    beyond_cap: int = 0  # past max_addresses


def parse_list(
    doc: Any, max_addresses: int, allow_networks: Sequence[addresses.Network] = ()
) -> AddressList:
    """Return the addresses of a GET /api/v1/addresses answer; MalformedList if it is none."""
    items = doc.get("addresses") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise MalformedList("expected an object with an 'addresses' list")
    kept: dict[tuple[str, int], Address] = {}
    malformed = not_public = beyond = 0
    for item in items:
        a = address_of(item)
        if a is None:
            malformed += 1
        elif not addresses.is_connectable(a.ip, allow_networks):
            not_public += 1
        elif (a.ip, a.port) in kept:
            continue
        elif len(kept) >= max_addresses:
            beyond += 1
        else:
            kept[(a.ip, a.port)] = a
    return AddressList(tuple(kept.values()), malformed, not_public, beyond)


def address_of(item: Any) -> Address | None:
    """Return one item as an Address, or None when any of its three fields is not valid."""
    if not isinstance(item, dict):
        return None
    ip, port, sni = item.get("ip"), item.get("port"), item.get("sni")
    if not isinstance(ip, str) or len(ip) > MAX_IP_CHARS or not addresses.is_ip(ip):
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return None
    name = _sni(sni)
    if name is None:
        return None
    return Address(ipaddress.ip_address(ip).compressed, port, name)


def _sni(value: Any) -> str | None:
    """Return ``value`` as the host name a ClientHello may carry (ASCII), or None."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 253:
        return None
    if addresses.is_ip(value):  # an address is never sent as an SNI (RFC 6066 section 3)
        return None
    try:
        return watchlist.domain(value)
    except ValueError:
        return None
