"""The source network of a probe's registration, as the flags count sources; never an address.

A keyed hash (HMAC-SHA-256 under the collector's own key) of the /24 (IPv4) or /48 (IPv6) the
probe registered from (``flags.source_prefix_v4`` and ``_v6``): probes registered from one
machine or subnet share a source and count as one probe. Keyed, because a /24 has only 2**24
candidates: a plain hash could be reversed by anyone holding the database without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from probe import addresses

# The name of the hash key among the collector's secrets (store.probes.key).
KEY_NAME = "source_network"
PREFIX_V4, PREFIX_V6 = 24, 48


def source_of(
    address: str, key: str, prefix_v4: int = PREFIX_V4, prefix_v6: int = PREFIX_V6
) -> str | None:
    """Return the source network of ``address``: the keyed hash of its prefix; None when the
    address is not an IP address (a Unix socket)."""
    prefix = addresses.prefix_of(address, prefix_v4, prefix_v6)
    if prefix is None:
        return None
    digest = hmac.new(key.encode(), str(prefix).encode(), hashlib.sha256).hexdigest()
    return f"net:{digest[:32]}"
