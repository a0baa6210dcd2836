"""The source network of a probe's registration, as the flags count sources; never an address.

With an ASN database, the ASN of the registering address (``asn:3215``); without one, a keyed
hash (HMAC-SHA-256, the collector's own key) of its /24 (IPv4) or /48 (IPv6): probes registered
from one machine or subnet share a source, and the stored value cannot be turned back into a
prefix by anyone without the key (a /24 has only 2**24 candidates: a plain hash would not do).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

# The name of the hash key among the collector's secrets (store.probes.key).
KEY_NAME = "source_network"
PREFIX = {4: 24, 6: 48}


def source_of(address: str, key: str, asn: int | None = None) -> str | None:
    """Return the source network of ``address``: its ASN when known, else the keyed hash of its
    prefix; None when the address is not an IP address (a Unix socket)."""
    if asn is not None:
        return f"asn:{asn}"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipaddress.ip_network(f"{ip}/{PREFIX[ip.version]}", strict=False)
    digest = hmac.new(key.encode(), str(prefix).encode(), hashlib.sha256).hexdigest()
    return f"net:{digest[:32]}"
