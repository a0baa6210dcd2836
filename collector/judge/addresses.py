"""Stored addresses: where watched services resolve, what each network blocks, the collateral.

Functions take a Connection inside the caller's transaction; the Store owns transactions. The
addresses here are public addresses of watched services (from the control's DNS answers and the
probes' connections), never the address a submission came from.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.judge import collateral
from collector.store import bulk, filters
from collector.store.measurements import MeasurementRow, rfc3339
from collector.store.schema import (
    address_flags,
    blocked_addresses,
    flags,
    network_key,
    service_addresses,
)

# A service's current addresses: those the control resolved within this span of its latest
# resolution (round-robin DNS hands out a pool over time; a service that moved leaves the old).
ADDRESS_WINDOW = datetime.timedelta(days=2)
# Flags whose method can be an address-level block (TCP, or TLS cut whatever the name).
ADDRESS_LEVEL = ("tcp_ip", "tls")

Span = tuple[datetime.datetime, datetime.datetime]


def note(conn: sa.Connection, rows: Sequence[MeasurementRow]) -> None:
    """Record the control's addresses of each row's service and the addresses rows show blocked."""
    resolved: dict[tuple[str, str], Span] = {}
    blocked: dict[tuple[str, str], Span] = {}
    networks: dict[str, tuple[int | None, str | None]] = {}
    for row in rows:
        for ip in _addresses(collateral.control_addresses(row.doc)):
            _widen(resolved, (row.service, ip), row.started_at)
        key = network_key(row.asn, row.network)
        for ip in _addresses(collateral.blocked_addresses(row.doc)):
            _widen(blocked, (key, ip), row.started_at)
            networks[key] = (row.asn, row.network)
    _upsert(
        conn,
        service_addresses,
        ("service", "ip"),
        [{"service": s, "ip": ip, **_span(v)} for (s, ip), v in sorted(resolved.items())],
    )
    _upsert(
        conn,
        blocked_addresses,
        ("network_key", "ip"),
        [
            {"network_key": k, "ip": ip, "asn": networks[k][0], "network": networks[k][1]}
            | _span(v)
            for (k, ip), v in sorted(blocked.items())
        ],
    )


def _addresses(values: Iterable[str]) -> list[str]:
    """Keep what parses as an IP address, in its canonical spelling (a record is untrusted)."""
    return sorted({ip for ip in map(_canonical, values) if ip is not None})


@functools.lru_cache(maxsize=8192)
def _canonical(value: str) -> str | None:
    # remembered: every batch names the same few addresses of each service again, and parsing
    # them was a third of a batch's insert
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _widen(spans: dict[tuple[str, str], Span], key: tuple[str, str], t: datetime.datetime) -> None:
    first, last = spans.get(key, (t, t))
    spans[key] = (min(first, t), max(last, t))


def _span(span: Span) -> dict[str, datetime.datetime]:
    return {"first_seen": span[0], "last_seen": span[1]}


def _upsert(
    conn: sa.Connection, table: sa.Table, keys: tuple[str, ...], values: list[dict[str, Any]]
) -> None:
    """Insert rows, or widen a stored row's (first_seen, last_seen) to cover the new times.

    ``values`` come sorted by key: concurrent writers lock rows in one order (no deadlock).
    """
    if values:
        build = functools.partial(_widening_upsert, table, keys)
        bulk.executemany(conn, f"upsert {table.name}", build, values)


def _widening_upsert(table: sa.Table, keys: tuple[str, ...], dialect_name: str) -> sa.Insert:
    dialect = sa.dialects.postgresql if dialect_name == "postgresql" else sa.dialects.sqlite
    stmt = dialect.insert(table)
    new, old = stmt.excluded, table.c
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            "first_seen": sa.case(
                (new.first_seen < old.first_seen, new.first_seen), else_=old.first_seen
            ),
            "last_seen": sa.case(
                (new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen
            ),
        },
    )


def query_collateral(conn: sa.Connection, **chosen: Any) -> list[dict[str, Any]]:
    """Return one row per address blocked on a network, with every watched service behind it.

    An address counts while a flag of that network is open at the address level (tcp_ip, tls)
    for a service the control resolves to it, and a record has shown the address blocked since
    that flag opened; or while an address flag of that network is open on it (the census's
    sweeps) and a watched service is behind it. ``chosen`` filters the networks
    (``filters.COLLATERAL_FILTERS``: asn, network) and ``order`` sorts them (desc, the default:
    most services first; asc: the exact reverse); raise ValueError naming a bad one.
    """
    open_flags = _open_address_flags(conn, chosen)
    current = _current_addresses(conn, services={s for _, s, _ in open_flags})
    since: dict[tuple[str, str], datetime.datetime] = {}
    for key, service, first_seen in open_flags:
        for ip in current.get(service, ()):
            since[(key, ip)] = min(since.get((key, ip), first_seen), first_seen)
    found = {
        (r.network_key, r.ip): collateral.BlockedAddress(
            r.ip, r.asn, r.network, r.first_seen, r.last_seen
        )
        for r in _blocked(conn, {k for k, _ in since}, {ip for _, ip in since})
        if (r.network_key, r.ip) in since and r.last_seen >= since[(r.network_key, r.ip)]
    }
    flagged = _flagged_addresses(conn, chosen)
    behind = services_on(conn, {ip for _, ip in found} | {ip for _, ip in flagged})
    for pair, b in flagged.items():
        if pair in found:
            old = found[pair]
            found[pair] = dataclasses.replace(
                old,
                first_seen=min(old.first_seen, b.first_seen),
                last_seen=max(old.last_seen, b.last_seen),
            )
        elif behind.get(b.ip):
            found[pair] = b
    rows = collateral.collateral(found.values(), behind)  # most services first: "desc"
    if not filters.descending(chosen, "desc"):
        rows.reverse()
    return [_collateral_item(r) for r in rows]


def _flagged_addresses(
    conn: sa.Connection, chosen: dict[str, Any]
) -> dict[tuple[str, str], collateral.BlockedAddress]:
    """(network key, ip) -> the address as its open address flags show it blocked."""
    c = address_flags.c
    stmt = (
        sa.select(
            c.network_key, c.ip, c.asn, c.network,
            sa.func.min(c.first_seen).label("first_seen"),
            sa.func.max(c.last_seen).label("last_seen"),
        )
        .where(c.state == "open", *filters.where(filters.COLLATERAL_FILTERS, c, chosen))
        .group_by(c.network_key, c.ip, c.asn, c.network)
    )  # fmt: skip
    return {
        (r.network_key, r.ip): collateral.BlockedAddress(
            r.ip, r.asn, r.network, r.first_seen, r.last_seen
        )
        for r in conn.execute(stmt)
    }


def _open_address_flags(
    conn: sa.Connection, chosen: dict[str, Any]
) -> list[tuple[str, str, datetime.datetime]]:
    c = flags.c
    unknown = set(chosen) - set(filters.names(filters.COLLATERAL_FILTERS))
    if unknown:
        raise TypeError(f"query_collateral: unknown filters {sorted(unknown)}")
    stmt = sa.select(c.network_key, c.service, c.first_seen).where(
        c.state == "open",
        c.method.in_(ADDRESS_LEVEL),
        *filters.where(filters.COLLATERAL_FILTERS, c, chosen),
    )
    return [(r.network_key, r.service, r.first_seen) for r in conn.execute(stmt)]


def current_addresses(conn: sa.Connection) -> dict[str, set[str]]:
    """Return every watched service's current addresses (within ADDRESS_WINDOW of its latest
    resolution)."""
    return _current_addresses(conn)


def _current_addresses(
    conn: sa.Connection, *, services: set[str] | None = None, ips: set[str] | None = None
) -> dict[str, set[str]]:
    """Return service -> its current addresses, for the given services or those on ``ips``."""
    c = service_addresses.c
    stmt = sa.select(c.service, c.ip, c.last_seen)
    if services is not None:
        stmt = stmt.where(c.service.in_(sorted(services)))
    if ips is not None:
        stmt = stmt.where(c.ip.in_(sorted(ips)))
    rows = conn.execute(stmt).all()
    latest = _latest_resolution(conn, {r.service for r in rows})
    out: dict[str, set[str]] = {}
    for r in rows:
        if r.last_seen >= latest[r.service] - ADDRESS_WINDOW:
            out.setdefault(r.service, set()).add(r.ip)
    return out


def _latest_resolution(conn: sa.Connection, services: set[str]) -> dict[str, datetime.datetime]:
    if not services:
        return {}
    c = service_addresses.c
    stmt = (
        sa.select(c.service, sa.func.max(c.last_seen).label("latest"))
        .where(c.service.in_(sorted(services)))
        .group_by(c.service)
    )
    return {r.service: r.latest for r in conn.execute(stmt)}


def _blocked(conn: sa.Connection, keys: set[str], ips: set[str]) -> list[Any]:
    if not keys:
        return []
    c = blocked_addresses.c
    stmt = sa.select(blocked_addresses).where(
        c.network_key.in_(sorted(keys)), c.ip.in_(sorted(ips))
    )
    return list(conn.execute(stmt))


def services_on(conn: sa.Connection, ips: set[str]) -> dict[str, list[str]]:
    """Return ip -> the services currently resolving to it."""
    if not ips:
        return {}
    out: dict[str, list[str]] = {}
    for service, addrs in _current_addresses(conn, ips=ips).items():
        for ip in addrs:
            out.setdefault(ip, []).append(service)
    return out


def _collateral_item(r: collateral.CollateralRow) -> dict[str, Any]:
    return {
        "ip": r.ip,
        "asn": r.asn,
        "network": r.network,
        "services": list(r.services),
        "first_seen": rfc3339(r.first_seen),
        "last_seen": rfc3339(r.last_seen),
    }


def collateral_counts(conn: sa.Connection) -> list[tuple[str | None, int, int]]:
    """Return (network, blocked addresses, distinct services behind them) per network."""
    per: dict[tuple[Any, Any], tuple[set[str], set[str]]] = {}
    for item in query_collateral(conn):
        ips, services = per.setdefault((item["asn"], item["network"]), (set(), set()))
        ips.add(item["ip"])
        services.update(item["services"])
    ordered = sorted(per.items(), key=lambda kv: (kv[0][1] or "", kv[0][0] or 0))
    return [(net, len(ips), len(svc)) for (_, net), (ips, svc) in ordered]
