"""The source network of a probe's registration, as the flags count sources; never an address.

A keyed hash (HMAC-SHA-256 under the collector's own key) of the /24 (IPv4) or /48 (IPv6) the
probe registered from (``flags.source_prefix_v4`` and ``_v6``): probes registered from one
machine or subnet share a source and count as one probe. Keyed, because a /24 has only 2**24
candidates: a plain hash could be reversed by anyone holding the database without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

# The name of the hash key among the collector's secrets (store.probes.key).
KEY_NAME = "source_network"
PREFIX_V4, PREFIX_V6 = 24, 48


def source_of(
    address: str, key: str, prefix_v4: int = PREFIX_V4, prefix_v6: int = PREFIX_V6
) -> str | None:
    """Return the source network of ``address``: the keyed hash of its prefix; None when the
    address is not an IP address (a Unix socket)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    length = prefix_v4 if ip.version == 4 else prefix_v6
    prefix = ipaddress.ip_network(f"{ip}/{length}", strict=False)
    digest = hmac.new(key.encode(), str(prefix).encode(), hashlib.sha256).hexdigest()
    return f"net:{digest[:32]}"
