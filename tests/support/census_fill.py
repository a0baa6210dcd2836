"""The census's tables filled directly, for the tests of its reads: named domains with ranks and
the intended mark, their resolutions (address <-> domain with first/last seen), address flags
open or closed, and the watched services' addresses.

Times are hours after ``T0``; resolutions widen pairs as the index does (collector/census), so
that "current" means what it means there: the pair's last_seen is the domain's resolved_at.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from collector.store import Store
from collector.store.schema import (
    address_flags,
    domain_addresses,
    domains,
    network_key,
    service_addresses,
)
from probe.times import rfc3339

T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
_ids = itertools.count(1)


def at(hours: float) -> datetime.datetime:
    return T0 + datetime.timedelta(hours=hours)


def text(hours: float) -> str:
    """A time as the API writes it."""
    return rfc3339(at(hours))


class CensusFill:
    """Writes census rows into one store, each call its own transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ids: dict[str, int] = {}

    def names(self, *names: str, intended: bool = False, ranks: Iterable[int] = ()) -> None:
        """Index names (ranks in order, else unranked)."""
        rank_of = dict(zip(names, ranks, strict=False))
        rows = [
            {"name": n, "rank": rank_of.get(n), "intended": intended, "added_at": T0} for n in names
        ]
        self.store.write(lambda conn: conn.execute(sa.insert(domains), rows))
        found = self.store.read(
            lambda conn: conn.execute(
                sa.select(domains.c.name, domains.c.id).where(domains.c.name.in_(names))
            ).all()
        )
        self.ids.update({name: i for name, i in found})

    def resolve(self, name: str, ips: Iterable[str], hours: float) -> None:
        """One resolution of ``name`` at ``hours`` answering ``ips``: their pairs widened to
        then, the domain's resolved_at set to then (its other addresses are no longer current)."""
        self.store.write(_resolve, self.ids[name], list(ips), at(hours))

    def flag(
        self,
        network: str,
        ip: str,
        first: float,
        last: float | None = None,
        closed: float | None = None,
        asn: int | None = None,
        method: str = "tcp_ip",
        evidence: tuple[str, ...] = (),
    ) -> str:
        """An address flag of ``network`` on ``ip``: open, or closed at ``closed``."""
        flag_id = f"af-{next(_ids)}"
        last = first if last is None else last
        row = {
            "id": flag_id,
            "network_key": network_key(asn, network),
            "asn": asn,
            "network": network,
            "ip": ip,
            "method": method,
            "state": "open" if closed is None else "closed",
            "first_seen": at(first),
            "last_seen": at(last),
            "closed_at": None if closed is None else at(closed),
            "probes": ["p-1", "p-2"],
            "confidence": 1.0,
            "evidence": list(evidence) or [str(uuid.uuid4())],
            "networks": 2,
        }
        self.store.write(lambda conn: conn.execute(sa.insert(address_flags), [row]))
        return flag_id

    def watch(self, service: str, ip: str, hours: float) -> None:
        """The control resolved ``service`` to ``ip`` at ``hours``."""
        row = {"service": service, "ip": ip, "first_seen": at(hours), "last_seen": at(hours)}
        self.store.write(lambda conn: conn.execute(sa.insert(service_addresses), [row]))


def _resolve(conn: sa.Connection, domain_id: int, ips: list[str], when: Any) -> None:
    c = domain_addresses.c
    for ip in ips:
        key = sa.and_(c.domain_id == domain_id, c.ip == ip)
        if conn.execute(sa.select(c.ip).where(key)).first() is None:
            conn.execute(
                sa.insert(domain_addresses),
                [{"domain_id": domain_id, "ip": ip, "first_seen": when, "last_seen": when}],
            )
        else:
            conn.execute(sa.update(domain_addresses).where(key).values(last_seen=when))
    conn.execute(sa.update(domains).where(domains.c.id == domain_id).values(resolved_at=when))
