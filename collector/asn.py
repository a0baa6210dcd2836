"""The network of a submitting address, from a MaxMind-format ASN database (GeoLite2-ASN layout).

The address is looked up, then forgotten: this module stores and logs nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import maxminddb


@dataclass(frozen=True)
class Network:
    asn: int
    name: str | None


class AsnDatabase:
    """A read-only ASN database; ``lookup`` answers None for an unknown or unparsable address."""

    def __init__(self, path: str) -> None:
        self._reader = maxminddb.open_database(path)

    def lookup(self, address: str) -> Network | None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        entry = self._reader.get(address)
        asn = entry.get("autonomous_system_number") if isinstance(entry, dict) else None
        if not isinstance(asn, int) or asn <= 0:
            return None
        name = entry.get("autonomous_system_organization") if isinstance(entry, dict) else None
        return Network(asn, str(name) if name else None)

    def close(self) -> None:
        self._reader.close()
