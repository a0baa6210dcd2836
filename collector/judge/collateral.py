"""Collateral damage: each address blocked at the address level, with every watched service on it.

Pure rules; collector/judge/addresses.py keeps what they find. An address is blocked "at the
address level" on a network when the probe's connection to it fails at TCP, or at TLS for every
name (the neutral SNI fails as well): whatever name is asked, the address is out of reach, so
every service that the control resolves to it is down there too.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BlockedAddress:
    ip: str
    asn: int | None
    network: str | None
    first_seen: datetime.datetime
    last_seen: datetime.datetime


@dataclass(frozen=True)
class CollateralRow:
    ip: str
    asn: int | None
    network: str | None
    services: tuple[str, ...]
    first_seen: datetime.datetime
    last_seen: datetime.datetime


def blocked_addresses(doc: Mapping[str, Any]) -> list[str]:
    """Return the addresses a stored record shows blocked at the address level."""
    v = doc.get("verdict") or {}
    if v.get("status") != "blocked":
        return []
    if v.get("method") == "tcp_ip":
        return sorted(
            {t["ip"] for t in doc.get("tcp", []) if t.get("failure")}
            - {t["ip"] for t in doc.get("tcp", []) if not t.get("failure")}
        )
    if (
        v.get("method") == "tls"
        and not str(v.get("detail", "")).endswith("_sni")
        and v.get("detail") != "mitm"
    ):
        tls = doc.get("tls", [])
        neutral_ok = {t["ip"] for t in tls if t.get("neutral") and not t.get("failure")}
        failed = {t["ip"] for t in tls if not t.get("neutral") and t.get("failure")}
        return sorted(failed - neutral_ok)
    return []


def control_addresses(doc: Mapping[str, Any]) -> list[str]:
    """Return the addresses the control resolved for the record's own name."""
    control = doc.get("control") or {}
    domain = (doc.get("target") or {}).get("domain")
    return sorted(
        {
            a
            for r in control.get("dns", [])
            if r.get("name") in (None, domain)
            for a in r.get("answers", [])
        }
    )


def collateral(
    blocked: Iterable[BlockedAddress], services_on: Mapping[str, Iterable[str]]
) -> list[CollateralRow]:
    """Join blocked addresses with the services resolved to them: one row an address a network."""
    rows = []
    for b in blocked:
        services = tuple(sorted(set(services_on.get(b.ip, ()))))
        rows.append(CollateralRow(b.ip, b.asn, b.network, services, b.first_seen, b.last_seen))
    return sorted(rows, key=lambda r: (-len(r.services), r.network or "", r.ip))
