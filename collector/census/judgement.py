"""The address judge's pass: pending sweeps in, address flags out, by the service flags' rules.

A chunk of pending sweeps (``judged_at`` null, oldest received first) is judged in one
transaction. Each entry becomes an observation (collector/census/looks.py: service = the
address, category "address", record id = the sweep id), weighed by the SAME rules as the service
flags (collector/judge/rules.py ``evaluate``) per (network, address), sweep after sweep. The
rules read each probe's latest look at an address (``address_looks``) and the blocked looks of
the last two days (``address_blocked_looks``, pruned here), never the sweeps again; only the
pairs where something can change are weighed (a blocked look now, or a flag held). On
PostgreSQL one advisory lock serialises judges of every process (ingest never waits on it).
Functions take a Connection inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite

from collector.census import looks as looks_mod
from collector.judge import flags as service_flags
from collector.judge.rules import DEFAULT_POLICY, Flag, Policy, Standing, evaluate
from collector.observation import Observation
from collector.store import bulk, probes
from collector.store.schema import (
    address_blocked_looks,
    address_flags,
    address_looks,
    address_vantage,
    network_key,
    sweeps,
)
from probe import addresses
from probe.addresses import Network

# The evidence an address is judged on: looks of the last two days, as for service flags.
WINDOW = datetime.timedelta(days=2)
# Sweeps a transaction judges at most (1,000 entries each): a backlog takes several commits.
CHUNK_SWEEPS = 10
# pg_advisory_xact_lock(int4, int4): apart from the service flags' pair locks (0x5B1F).
JUDGE_LOCK_CLASS = 0x5B20

Pair = tuple[str, str]
"""(network key, address)."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one chunk did: sweeps judged, flags newly opened, flags opened or closed (the
    published addresses follow those)."""

    taken: int
    opened: list[Flag]
    toggled: int


@dataclasses.dataclass(frozen=True)
class Options:
    """How a judge weighs: the flags' policy, whether a vantage looks (else the probes' word
    stands), and the networks the collector may dial beyond public addresses."""

    policy: Policy = DEFAULT_POLICY
    vantage: bool = False
    allow_networks: tuple[Network, ...] = ()


def pending_failing(
    conn: sa.Connection, upto: datetime.datetime, limit: int, allow: Sequence[Network]
) -> dict[str, tuple[int, str]]:
    """Return the addresses the next ``limit`` pending sweeps show blocked, with the port and
    name of the collector's own look at each (the entry's)."""
    out: dict[str, tuple[int, str]] = {}
    for row in _pending(conn, upto, limit):
        for entry in row.doc["entries"]:
            found = looks_mod.status_of(entry)
            if found and found[0] == "blocked" and addresses.is_connectable(entry["ip"], allow):
                out.setdefault(entry["ip"], (entry["port"], entry["sni"]))
    return out


def _pending(conn: sa.Connection, upto: datetime.datetime, limit: int) -> list[Any]:
    c = sweeps.c
    stmt = (
        sa.select(sweeps)
        .where(c.judged_at.is_(None), c.received_at <= upto)
        .order_by(c.received_at, c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt))


def judge_chunk(
    conn: sa.Connection,
    now: datetime.datetime,
    upto: datetime.datetime,
    options: Options = Options(),
    limit: int = CHUNK_SWEEPS,
) -> Chunk:
    """Judge the oldest pending sweeps received up to ``upto`` (``limit`` at most); mark them
    judged at ``now``."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:c, 0)"), {"c": JUDGE_LOCK_CLASS})
    taken = _pending(conn, upto, limit)
    if not taken:
        return Chunk(0, [], 0)
    since = now - WINDOW
    per_sweep = _observations(conn, taken, since, options)
    state = _State(conn, per_sweep, since, options.policy)
    opened = []
    for row, found in zip(taken, per_sweep, strict=True):
        opened += state.weigh(found, row.received_at)
    toggled = state.write(conn)
    _store_looks(conn, [o for found in per_sweep for o in found])
    conn.execute(
        sa.update(sweeps).where(sweeps.c.id.in_([r.id for r in taken])).values(judged_at=now)
    )
    conn.execute(sa.delete(address_blocked_looks).where(address_blocked_looks.c.started_at < since))
    return Chunk(len(taken), opened, toggled)


def _observations(
    conn: sa.Connection, taken: Sequence[Any], since: datetime.datetime, options: Options
) -> list[list[Observation]]:
    """Return each sweep's decisive looks (one an address), ``down`` where the collector's
    vantage fails to reach a blocked address too; addresses the collector would never dial
    are left out."""
    down = _vantage_failures(conn, taken) if options.vantage else {}
    out = []
    for row in taken:
        sweep = {"id": row.id, "probe_id": row.probe_id, "asn": row.asn, "network": row.network}
        found: dict[str, Observation] = {}
        if row.started_at >= since:
            for entry in row.doc["entries"]:
                if not addresses.is_connectable(entry["ip"], options.allow_networks):
                    continue
                o = looks_mod.look(sweep, entry, row.started_at, down.get(entry["ip"]))
                if o is not None and o.status in ("ok", "blocked"):
                    if o.service not in found or o.status == "blocked":
                        found[o.service] = o
        out.append(list(found.values()))
    return out


def _vantage_failures(conn: sa.Connection, taken: Sequence[Any]) -> dict[str, str | None]:
    """Return the collector's latest look at every address the sweeps show blocked."""
    ips = {
        e["ip"]
        for row in taken
        for e in row.doc["entries"]
        if (looks_mod.status_of(e) or ("",))[0] == "blocked"
    }
    c = address_vantage.c
    out: dict[str, str | None] = {}
    for chunk in _chunks(sorted(ips)):
        for r in conn.execute(sa.select(c.ip, c.failure).where(c.ip.in_(chunk))):
            out[r.ip] = r.failure
    return out


def _chunks(values: Sequence[str], size: int = 1000) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


Looks = dict[str, dict[tuple[str, str], Observation]]
"""address -> (network key, probe id) -> that probe's latest ok-or-blocked look."""


class _State:
    """The looks and flags of the addresses a chunk may change, as it goes."""

    def __init__(
        self,
        conn: sa.Connection,
        per_sweep: list[list[Observation]],
        since: datetime.datetime,
        policy: Policy,
    ) -> None:
        self.policy = policy
        touched = {_pair(o) for found in per_sweep for o in found}
        self.current = _current_flags(conn, touched)
        blocked_now = {_pair(o) for found in per_sweep for o in found if o.status == "blocked"}
        self.weighed = blocked_now | {p for p, held in self.current.items() if _open(held)}
        self.ips = {ip for _, ip in self.weighed}
        self.looks = _looks(conn, self.ips, since)
        self.blocked = _blocked(conn, self.weighed, since)
        self.stored = {service_flags.flag_id(f): f for held in self.current.values() for f in held}
        self.now: dict[str, Flag] = dict(self.stored)
        ids = {o.probe_id for found in per_sweep for o in found}
        ids |= {k[1] for held in self.looks.values() for k in held}
        ids |= {p for f in self.stored.values() for p in f.probes}
        self.standings = {
            pid: Standing(r.source or f"probe:{pid}", r.created_at, r.revoked_at is not None)
            for pid, r in probes.of_ids(conn, ids).items()
        }

    def weigh(self, found: list[Observation], at: datetime.datetime) -> list[Flag]:
        """Apply one sweep's looks, then weigh the pairs it touched that may change."""
        pairs = []
        for o in found:
            pair = _pair(o)
            if o.service in self.ips:  # other networks' looks tell a block from an outage
                held = self.looks.setdefault(o.service, {})
                kept = held.get((pair[0], o.probe_id))
                if kept is None or (o.started_at, o.record_id) >= (kept.started_at, kept.record_id):
                    held[(pair[0], o.probe_id)] = o
            if pair not in self.weighed:
                continue
            if o.status == "blocked":
                self.blocked.setdefault(pair, {})[o.record_id] = o
            pairs.append(pair)
        opened = []
        for pair in sorted(set(pairs)):
            opened += self._judged(pair, at)
        return opened

    def _judged(self, pair: Pair, at: datetime.datetime) -> list[Flag]:
        key, ip = pair
        mine = dict(self.blocked.get(pair, {}))
        others = []
        for (nkey, _), o in self.looks.get(ip, {}).items():
            if nkey == key:
                mine.setdefault(o.record_id, o)
            else:
                others.append(o)
        ordered = sorted(mine.values(), key=lambda o: (o.started_at, o.record_id))
        held = {f.method: f for f in self.current.get(pair, [])}
        found = evaluate(ordered, list(held.values()), others, self.standings, self.policy, at)
        opened = []
        for f in found:
            fid = service_flags.flag_id(f)
            before = self.now.get(fid)
            if f.state == "open" and (before is None or before.state != "open"):
                opened.append(f)
            self.now[fid] = f
            held[f.method] = f
        self.current[pair] = list(held.values())
        return opened

    def write(self, conn: sa.Connection) -> int:
        """Store the flags changed and new (the changed first: one open row at a time);
        return how many were opened or closed."""
        new = [f for fid, f in self.now.items() if fid not in self.stored]
        changed = [f for fid, f in self.now.items() if fid in self.stored and self.stored[fid] != f]
        toggled = len(new) + sum(1 for f in changed if self.stored[_id(f)].state != f.state)
        if changed:
            stmt = sa.update(address_flags).where(address_flags.c.id == sa.bindparam("fid"))
            conn.execute(stmt, [{"fid": service_flags.flag_id(f), **_values(f)} for f in changed])
        if new:
            rows = [{"id": service_flags.flag_id(f), **_values(f)} for f in new]
            conn.execute(sa.insert(address_flags), rows)
        return toggled


def _id(f: Flag) -> str:
    return service_flags.flag_id(f)


def _pair(o: Observation) -> Pair:
    return network_key(o.asn, o.network), o.service


def _open(held: list[Flag]) -> bool:
    return any(f.state == "open" for f in held)


def _current_flags(conn: sa.Connection, pairs: set[Pair]) -> dict[Pair, list[Flag]]:
    """Return each pair's latest flag of each method (open, or closed as history's end)."""
    if not pairs:
        return {}
    c = address_flags.c
    keys = sorted({k for k, _ in pairs})
    latest: dict[Pair, dict[str, Flag]] = {}
    for chunk in _chunks(sorted({ip for _, ip in pairs})):
        stmt = (
            sa.select(address_flags)
            .where(c.ip.in_(chunk), c.network_key.in_(keys))
            .order_by(c.method, c.first_seen)
        )
        for row in conn.execute(stmt):
            pair = (row.network_key, row.ip)
            if pair in pairs:
                latest.setdefault(pair, {})[row.method] = flag_of(row)
    return {p: list(by_method.values()) for p, by_method in latest.items()}


def flag_of(row: Any) -> Flag:
    """Return the Flag an address_flags row holds (its address as the rules' service)."""
    return Flag(
        asn=row.asn,
        network=row.network,
        service=row.ip,
        category=looks_mod.CATEGORY,
        method=row.method,
        state=row.state,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        probes=tuple(row.probes),
        confidence=row.confidence,
        evidence=tuple(row.evidence),
        closed_at=row.closed_at,
        networks=row.networks,
    )


def _values(f: Flag) -> dict[str, Any]:
    return {
        "network_key": network_key(f.asn, f.network),
        "asn": f.asn,
        "network": f.network,
        "ip": f.service,
        "method": f.method,
        "state": f.state,
        "first_seen": f.first_seen,
        "last_seen": f.last_seen,
        "closed_at": f.closed_at,
        "probes": list(f.probes),
        "confidence": f.confidence,
        "evidence": list(f.evidence),
        "networks": f.networks,
    }


def _looks(conn: sa.Connection, ips: set[str], since: datetime.datetime) -> Looks:
    """Return the latest looks of every probe of every network at ``ips``."""
    c = address_looks.c
    out: Looks = defaultdict(dict)
    for chunk in _chunks(sorted(ips)):
        stmt = sa.select(address_looks).where(c.ip.in_(chunk), c.started_at >= since)
        for r in conn.execute(stmt):
            out[r.ip][(r.network_key, r.probe_id)] = _observation(r, r.status, r.method)
    return out


def _blocked(
    conn: sa.Connection, pairs: set[Pair], since: datetime.datetime
) -> dict[Pair, dict[str, Observation]]:
    """Return each pair's blocked looks since ``since``, by sweep id."""
    out: dict[Pair, dict[str, Observation]] = {}
    if not pairs:
        return out
    c = address_blocked_looks.c
    keys = sorted({k for k, _ in pairs})
    for chunk in _chunks(sorted({ip for _, ip in pairs})):
        stmt = sa.select(address_blocked_looks).where(
            c.ip.in_(chunk), c.network_key.in_(keys), c.started_at >= since
        )
        for r in conn.execute(stmt):
            pair = (r.network_key, r.ip)
            if pair in pairs:
                out.setdefault(pair, {})[r.sweep_id] = _observation(r, "blocked", r.method)
    return out


def _observation(row: Any, status: str, method: str | None) -> Observation:
    return Observation(
        record_id=row.sweep_id,
        probe_id=row.probe_id,
        asn=row.asn,
        network=row.network,
        service=row.ip,
        category=looks_mod.CATEGORY,
        started_at=row.started_at,
        status=status,
        method=method,
    )


def _store_looks(conn: sa.Connection, found: Sequence[Observation]) -> None:
    """Keep each probe's newest look at each address, and every blocked look."""
    newest: dict[tuple[str, str, str], Observation] = {}
    for o in found:
        key = (network_key(o.asn, o.network), o.service, o.probe_id)
        kept = newest.get(key)
        if kept is None or (o.started_at, o.record_id) > (kept.started_at, kept.record_id):
            newest[key] = o
    rows = [_look_row(k[0], newest[k]) for k in sorted(newest)]  # one lock order
    bulk.executemany(conn, "upsert address_looks", _newer_upsert, rows)
    blocked = [
        {k: v for k, v in _look_row(network_key(o.asn, o.network), o).items() if k != "status"}
        for o in found
        if o.status == "blocked"
    ]
    bulk.executemany(conn, "insert address_blocked_looks", _blocked_insert, blocked)


def _look_row(key: str, o: Observation) -> dict[str, Any]:
    return {
        "network_key": key,
        "ip": o.service,
        "probe_id": o.probe_id,
        "asn": o.asn,
        "network": o.network,
        "sweep_id": o.record_id,
        "started_at": o.started_at,
        "status": o.status,
        "method": o.method,
    }


def _dialect(name: str) -> Any:
    return sa.dialects.postgresql if name == "postgresql" else sa.dialects.sqlite


def _newer_upsert(dialect_name: str) -> sa.Insert:
    """Insert a look, or replace the stored one when this one is newer."""
    stmt = _dialect(dialect_name).insert(address_looks)
    new, old = stmt.excluded, address_looks.c
    key = ("network_key", "ip", "probe_id")
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c.name: new[c.name] for c in address_looks.c if c.name not in key},
        where=sa.or_(
            new.started_at > old.started_at,
            sa.and_(new.started_at == old.started_at, new.sweep_id > old.sweep_id),
        ),
    )


def _blocked_insert(dialect_name: str) -> sa.Insert:
    stmt = _dialect(dialect_name).insert(address_blocked_looks)
    return stmt.on_conflict_do_nothing(index_elements=["network_key", "ip", "sweep_id"])


def store_vantage(
    conn: sa.Connection, looked: Sequence[tuple[str, str, str | None]], at: datetime.datetime
) -> None:
    """Keep the collector's latest look at each address: (ip, sni, failure or None)."""
    rows = [
        {"ip": ip, "sni": sni, "checked_at": at, "failure": failure}
        for ip, sni, failure in sorted(looked)
    ]
    bulk.executemany(conn, "upsert address_vantage", _vantage_upsert, rows)


def _vantage_upsert(dialect_name: str) -> sa.Insert:
    stmt = _dialect(dialect_name).insert(address_vantage)
    return stmt.on_conflict_do_update(
        index_elements=["ip"],
        set_={c: stmt.excluded[c] for c in ("sni", "checked_at", "failure")},
    )


def fresh_vantage(conn: sa.Connection, ips: Sequence[str], since: datetime.datetime) -> set[str]:
    """Return those of ``ips`` the collector looked at since ``since``."""
    c = address_vantage.c
    out: set[str] = set()
    for chunk in _chunks(sorted(ips)):
        stmt = sa.select(c.ip).where(c.ip.in_(chunk), c.checked_at >= since)
        out.update(conn.execute(stmt).scalars())
    return out
