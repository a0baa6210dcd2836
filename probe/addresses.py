"""The address policy of SPEC.md (--allow-network): which answers a probe may dial; pure.

Loopback and unspecified addresses are always an anomaly, whatever is allowed: a resolver that
answers 127.0.0.1 must not make a volunteer's probe talk to its own machine. Other non-public
addresses (private, link-local, shared, documentation) are dialled only inside allowed networks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def always_anomalous(text: str) -> bool:
    """Loopback, unspecified, or not an address at all: never dialled, always a bogon."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return True
    return addr.is_loopback or addr.is_unspecified


def is_connectable(text: str, allow_networks: Iterable[Network] = ()) -> bool:
    """Tell whether a probe may connect to ``text``: public, or inside an allowed network."""
    if always_anomalous(text):
        return False
    addr = ipaddress.ip_address(text)
    return addr.is_global or any(addr.version == n.version and addr in n for n in allow_networks)
