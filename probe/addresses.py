"""The address policy of SPEC.md (--allow-network): which answers a probe may dial; pure.

Loopback and unspecified addresses are always an anomaly, whatever is allowed: a resolver that
answers 127.0.0.1 must not make a volunteer's probe talk to its own machine. Other non-public
addresses (private, link-local, shared, documentation) are dialled only inside allowed networks.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Facts(NamedTuple):
    address: bool  # an IP address at all
    anomalous: bool  # loopback, unspecified, or not an address
    is_global: bool


@functools.lru_cache(maxsize=8192)
def _facts(text: str) -> _Facts:
    # Remembered: the collector judges the same CDN addresses record after record, and
    # ``is_global`` walks ipaddress's tables of special networks each time
    # (docs/benchmarks.md §3.7).
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return _Facts(False, True, False)
    return _Facts(True, addr.is_loopback or addr.is_unspecified, addr.is_global)


def is_ip(text: str) -> bool:
    return _facts(text).address


def always_anomalous(text: str) -> bool:
    """Loopback, unspecified, or not an address at all: never dialled, always a bogon."""
    return _facts(text).anomalous


def is_global(text: str) -> bool:
    """A public address (ipaddress's ``is_global``); False for what is not an address."""
    return _facts(text).is_global


def is_connectable(text: str, allow_networks: Iterable[Network] = ()) -> bool:
    """Tell whether a probe may connect to ``text``: public, or inside an allowed network."""
    if always_anomalous(text):
        return False
    addr = ipaddress.ip_address(text)
    return addr.is_global or any(addr.version == n.version and addr in n for n in allow_networks)
