"""The census's reads: what each network blocks now, an address's domains, the census over time.

Functions take a Connection (``Store.read``). The counting rules are docs/spec.md's ("The census:
routes, metrics, export"): per network, the distinct addresses of its open address flags; the
collateral, the distinct indexed domains not marked intended whose current addresses include one
of them (an address is a domain's current one while ``domain_addresses.last_seen`` equals
``domains.resolved_at``); the intended ones apart; the watched services currently on them
(collector/judge/addresses.py). Distinct domains are counted in SQL over the (ip, domain_id,
last_seen) index: a million indexed names never come into Python. Bad filters raise ValueError
naming the filter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from collector.census import history
from collector.judge.addresses import services_on
from collector.store import filters
from collector.store.measurements import rfc3339
from collector.store.schema import address_flags, domain_addresses, domains

IN_CHUNK = 500  # addresses an IN (...) list: well within every driver's parameter limit
UNRANKED = 2**62  # where names without a rank sort: after every ranked one
F, DA, D = address_flags.c, domain_addresses.c, domains.c
CURRENT = DA.last_seen == D.resolved_at
ON_DOMAIN = D.id == DA.domain_id


def _network(row: Any) -> tuple[int | None, str | None]:
    return row.asn, row.network


def census(conn: sa.Connection, chosen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What is blocked now, one item a network with an open address flag (the filters:
    ``filters.CENSUS_FILTERS``), most collateral first."""
    where = [F.state == "open", *filters.where(filters.CENSUS_FILTERS, F, chosen)]
    per_network = conn.execute(
        sa.select(
            F.network_key, F.asn, F.network,
            sa.func.count(sa.distinct(F.ip)).label("addresses"),
            sa.func.min(F.first_seen).label("since"),
        ).where(*where).group_by(F.network_key, F.asn, F.network)
    ).all()  # fmt: skip
    if not per_network:
        return []
    blocked = sa.select(F.network_key, F.ip).where(*where).distinct().subquery()
    counted = conn.execute(
        sa.select(blocked.c.network_key, D.intended, sa.func.count(sa.distinct(D.id)))
        .select_from(blocked)
        .join(domain_addresses, DA.ip == blocked.c.ip)
        .join(domains, sa.and_(ON_DOMAIN, CURRENT))
        .group_by(blocked.c.network_key, D.intended)
    ).all()
    domains_of = {(key, bool(intended)): n for key, intended, n in counted}
    ips_of: dict[str, set[str]] = {}
    for key, ip in conn.execute(sa.select(blocked)):
        ips_of.setdefault(key, set()).add(ip)
    behind = _services(conn, set().union(*ips_of.values()))
    items = [
        {
            "asn": r.asn,
            "network": r.network,
            "blocked_addresses": r.addresses,
            "collateral_domains": domains_of.get((r.network_key, False), 0),
            "intended_domains": domains_of.get((r.network_key, True), 0),
            "watched_services": len(set().union(*(behind.get(ip, ()) for ip in ips_of[key]))),
            "since": rfc3339(r.since),
        }
        for r in per_network
        for key in (r.network_key,)
    ]
    ordered = sorted(
        items, key=lambda i: (-i["collateral_domains"], i["network"] or "", i["asn"] or 0)
    )
    return ordered if filters.descending(chosen, "desc") else ordered[::-1]


def _services(conn: sa.Connection, ips: set[str]) -> dict[str, list[str]]:
    """ip -> the watched services currently on it."""
    out: dict[str, list[str]] = {}
    for part in _chunks(sorted(ips)):
        out.update(services_on(conn, set(part)))
    return out


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def addresses(conn: sa.Connection, chosen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One item a (network, address) of the address flags the filters choose
    (``filters.CENSUS_ADDRESS_FILTERS``): open if one of its chosen flags is, first and last
    seen over them, and the address's current domains; most collateral first."""
    where = filters.where(filters.CENSUS_ADDRESS_FILTERS, F, chosen)
    rows = conn.execute(
        sa.select(
            F.network_key, F.asn, F.network, F.ip,
            sa.func.min(F.first_seen).label("first_seen"),
            sa.func.max(F.last_seen).label("last_seen"),
            sa.func.max(sa.case((F.state == "open", 1), else_=0)).label("open"),
        ).where(*where).group_by(F.network_key, F.asn, F.network, F.ip)
    ).all()  # fmt: skip
    ips = {r.ip for r in rows}
    counts = current_counts(conn, ips)
    behind = _services(conn, ips)
    items = []
    for r in rows:
        collateral, intended = counts.get(r.ip, (0, 0))
        items.append(
            {
                "ip": r.ip,
                "asn": r.asn,
                "network": r.network,
                "state": "open" if r.open else "closed",
                "first_seen": rfc3339(r.first_seen),
                "last_seen": rfc3339(r.last_seen),
                "domains": collateral + intended,
                "collateral_domains": collateral,
                "intended_domains": intended,
                "services": sorted(behind.get(r.ip, ())),
            }
        )
    ordered = sorted(items, key=lambda i: (-i["domains"], i["network"] or "", i["ip"]))
    return ordered if filters.descending(chosen, "desc") else ordered[::-1]


def current_counts(conn: sa.Connection, ips: Iterable[str]) -> dict[str, tuple[int, int]]:
    """ip -> (current domains not intended, current intended domains)."""
    out: dict[str, list[int]] = {}
    for part in _chunks(sorted(set(ips))):
        stmt = (
            sa.select(DA.ip, D.intended, sa.func.count())
            .select_from(domain_addresses)
            .join(domains, sa.and_(ON_DOMAIN, CURRENT))
            .where(DA.ip.in_(part))
            .group_by(DA.ip, D.intended)
        )
        for ip, intended, n in conn.execute(stmt):
            out.setdefault(ip, [0, 0])[1 if intended else 0] += n
    return {ip: (c[0], c[1]) for ip, c in out.items()}


def address(conn: sa.Connection, ip: str, limit: int, cursor: str | None) -> dict[str, Any] | None:
    """One address: a page of the domains ever seen on it, best ranked first, and every
    address flag of it, latest first; None when the census does not know the address."""
    after = decode_cursor(cursor) if cursor is not None else None
    rank = sa.func.coalesce(D.rank, UNRANKED)
    stmt = (
        sa.select(D.id, D.name, D.rank, D.intended, DA.first_seen, DA.last_seen, CURRENT)
        .select_from(domain_addresses)
        .join(domains, ON_DOMAIN)
        .where(DA.ip == ip)
        .order_by(rank, D.id)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(sa.or_(rank > after[0], sa.and_(rank == after[0], D.id > after[1])))
    rows = conn.execute(stmt).all()
    flags = conn.execute(
        sa.select(address_flags).where(F.ip == ip).order_by(F.first_seen.desc(), F.network_key)
    ).all()
    if not rows and not flags and not _known(conn, ip):
        return None
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return {
        "ip": ip,
        "domains": [_domain_item(r) for r in rows],
        "next_cursor": encode_cursor(last.rank, last.id) if last is not None else None,
        "networks": [_flag_item(f) for f in flags],
    }


def _known(conn: sa.Connection, ip: str) -> bool:
    return conn.execute(sa.select(DA.ip).where(DA.ip == ip).limit(1)).first() is not None


def _domain_item(r: Any) -> dict[str, Any]:
    return {
        "name": r.name,
        "rank": r.rank,
        "intended": bool(r.intended),
        "current": bool(r[-1]),
        "first_seen": rfc3339(r.first_seen),
        "last_seen": rfc3339(r.last_seen),
    }


def _flag_item(f: Any) -> dict[str, Any]:
    return {
        "asn": f.asn,
        "network": f.network,
        "method": f.method,
        "state": f.state,
        "first_seen": rfc3339(f.first_seen),
        "last_seen": rfc3339(f.last_seen),
        "closed_at": rfc3339(f.closed_at) if f.closed_at is not None else None,
        "evidence": list(f.evidence),
    }


def encode_cursor(rank: int | None, domain_id: int) -> str:
    """The opaque cursor pointing just after a domain in the (rank, id) order."""
    raw = json.dumps([UNRANKED if rank is None else rank, domain_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (rank, id) a cursor points after, or raise ValueError("cursor: ...")."""
    bad = ValueError("cursor: not a cursor this API gave out")
    if len(cursor) > 64:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, domain_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise bad from None
    if not all(type(v) is int and 0 <= v <= UNRANKED for v in (rank, domain_id)):
        raise bad
    return rank, domain_id


def census_history(
    conn: sa.Connection, chosen: Mapping[str, Any], b: history.Buckets
) -> list[dict[str, Any]]:
    """One series a network with an address flag in force during the buckets: per bucket, the
    addresses flagged at any time within it, and the domains on them then (docs/spec.md)."""
    flagged = conn.execute(
        sa.select(
            F.network_key, F.asn, F.network, F.ip,
            _within(F.first_seen, b.start, b.end),
            _within(F.closed_at, b.start, b.end),
        ).where(
            *filters.where(filters.CENSUS_FILTERS, F, chosen),
            F.first_seen < b.end,
            sa.or_(F.closed_at.is_(None), F.closed_at >= b.start),
        )
    ).all()  # fmt: skip
    spans: dict[str, dict[str, list[history.Range]]] = {}  # network key -> ip -> ranges
    names: dict[str, tuple[int | None, str | None]] = {}
    for key, asn, network, ip, first, closed in flagged:
        spans.setdefault(key, {}).setdefault(ip, []).append(b.span(first, closed))
        names[key] = (asn, network)
    pairs = _pairs_during(conn, {ip for by_ip in spans.values() for ip in by_ip}, b)
    series = [_series(names[key], by_ip, pairs, b) for key, by_ip in spans.items()]
    return sorted(series, key=lambda s: (s["network"] or "", s["asn"] or 0))


def _within(column: Any, start: Any, end: Any) -> Any:
    """The time when within [start, end), else null: the bucket arithmetic is left for the few
    times inside the window (most pairs and flags span all of it)."""
    return sa.case((sa.and_(column >= start, column < end), column), else_=sa.null())


def _pairs_during(
    conn: sa.Connection, ips: set[str], b: history.Buckets
) -> dict[str, list[tuple[int, bool, history.Range]]]:
    """ip -> (domain id, intended, buckets it was on the address) for the pairs in the span."""
    out: dict[str, list[tuple[int, bool, history.Range]]] = {}
    last = sa.case((CURRENT, sa.null()), else_=_within(DA.last_seen, b.start, b.end))
    for part in _chunks(sorted(ips)):
        stmt = (
            sa.select(DA.ip, DA.domain_id, D.intended, _within(DA.first_seen, b.start, b.end), last)
            .select_from(domain_addresses)
            .join(domains, ON_DOMAIN)
            .where(
                DA.ip.in_(part),
                DA.first_seen < b.end,
                sa.or_(DA.last_seen >= b.start, CURRENT),
            )
        )
        for ip, domain_id, intended, first, gone in conn.execute(stmt):
            out.setdefault(ip, []).append((domain_id, bool(intended), b.span(first, gone)))
    return out


def _series(
    network: tuple[int | None, str | None],
    by_ip: dict[str, list[history.Range]],
    pairs: dict[str, list[tuple[int, bool, history.Range]]],
    b: history.Buckets,
) -> dict[str, Any]:
    blocked, collateral, intended = (history.Tally(b.count) for _ in range(3))
    for ip, ranges in by_ip.items():
        for flag_range in history.merged(ranges):
            blocked.add(ip, flag_range)
            for domain_id, is_intended, pair_range in pairs.get(ip, ()):
                both = history.overlap(flag_range, pair_range)
                if both is not None:
                    (intended if is_intended else collateral).add(domain_id, both)
    counts = zip(blocked.per_bucket(), collateral.per_bucket(), intended.per_bucket(), strict=True)
    points = [
        {
            "at": rfc3339(b.at(i)),
            "blocked_addresses": n_ips,
            "collateral_domains": n_collateral,
            "intended_domains": n_intended,
        }
        for i, (n_ips, n_collateral, n_intended) in enumerate(counts)
    ]
    return {"asn": network[0], "network": network[1], "points": points}


def export_flags(conn: sa.Connection, chosen: Mapping[str, Any]) -> list[Any]:
    """The address flags the filters choose (``filters.CENSUS_ADDRESS_FILTERS``), in (network,
    address, first seen) order: the census export's outer loop."""
    stmt = (
        sa.select(address_flags)
        .where(*filters.where(filters.CENSUS_ADDRESS_FILTERS, F, chosen))
        .order_by(F.network_key, F.ip, F.first_seen, F.method)
    )
    return list(conn.execute(stmt))


def flag_domains(
    conn: sa.Connection, flag: Any, after_id: int, limit: int
) -> list[tuple[int, str, int | None, bool]]:
    """A chunk of the domains on a flag's address while it was in force, in id order after
    ``after_id``: (id, name, rank, intended)."""
    stmt = (
        sa.select(D.id, D.name, D.rank, D.intended)
        .select_from(domain_addresses)
        .join(domains, ON_DOMAIN)
        .where(
            DA.ip == flag.ip,
            DA.domain_id > after_id,
            sa.or_(DA.last_seen >= flag.first_seen, CURRENT),
            *([DA.first_seen <= flag.closed_at] if flag.closed_at is not None else []),
        )
        .order_by(DA.domain_id)
        .limit(limit)
    )
    return [(r.id, r.name, r.rank, bool(r.intended)) for r in conn.execute(stmt)]


def network_counts(conn: sa.Connection) -> list[tuple[int | None, str | None, int, int]]:
    """(asn, network, blocked addresses, collateral domains) per network, for the gauges."""
    return [
        (i["asn"], i["network"], i["blocked_addresses"], i["collateral_domains"])
        for i in census(conn, {})
    ]
