"""The addresses probes sweep: GET /api/v1/addresses's document, computed away from requests.

docs/spec.md, "Address targets". The selection, in priority order, each address listed once
with all its reasons: addresses with an open address flag (``flagged``: to see them close), the
current addresses of names marked intended (``intended``), the watched services' current
addresses (``watched``), then the addresses hosting the most current indexed domains
(``shared``); public only (or within ``network.allow_networks``), at most
``census.addresses_per_cycle``. Over a million names this is most of a minute of SQL
(docs/bench/census-judge.md): ``TargetCache`` computes it in a worker thread at start, keeps
the encoded bytes and their ETag, and computes again in the background when older than
``MAX_AGE_SECONDS``, or after ``invalidate`` (a flag change, a resolution pass) once
``MIN_AGE_SECONDS`` have passed, serving the document before meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from collector.census.sweeps import NEUTRAL_SNI
from collector.judge import addresses as service_addresses
from collector.store import Store, StoreUnavailable
from collector.store.schema import address_flags, domain_addresses, domains
from probe import addresses, logs
from probe.addresses import Network
from probe.times import rfc3339

REASONS = ("flagged", "intended", "watched", "shared")
PORT = 443
MAX_AGE_SECONDS = 300.0
MIN_AGE_SECONDS = 10.0
_UNRANKED = 2**62  # a name without a rank comes after every ranked one
_ENCODER = msgspec.json.Encoder()


@dataclasses.dataclass
class _Target:
    ip: str
    reasons: list[str]
    sni: str | None = None
    domains: int = 0


def compute(
    conn: sa.Connection,
    cap: int,
    allow: Sequence[Network] = (),
    watched_names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Return the targets, highest priority first, at most ``cap``; ``watched_names`` gives
    each watched service's host name (the SNI of an address no indexed name is on)."""
    found: dict[str, _Target] = {}
    current = service_addresses.current_addresses(conn)
    watched = {ip: s for s, ips in sorted(current.items()) for ip in sorted(ips)}
    groups: list[tuple[str, Sequence[str]]] = [
        ("flagged", _flagged(conn)),
        ("intended", _intended(conn)),
        ("watched", sorted(watched)),
        ("shared", _shared(conn, 2 * cap + 100)),
    ]
    for reason, ips in groups:
        for ip in ips:
            if ip in found:
                found[ip].reasons.append(reason)
            elif len(found) < cap and addresses.is_connectable(ip, allow):
                found[ip] = _Target(ip, [reason])
    for ip, (sni, count) in _best_names(conn, sorted(found)).items():
        found[ip].sni, found[ip].domains = sni, count
    names = watched_names or {}
    return [
        {
            "ip": t.ip,
            "port": PORT,
            "sni": t.sni or names.get(watched.get(t.ip, ""), NEUTRAL_SNI),
            "reasons": t.reasons,
            "domains": t.domains,
        }
        for t in found.values()
    ]


def _current() -> Any:
    """The condition of a current (domain, address) pair: seen at the domain's latest
    resolution."""
    return sa.and_(
        domains.c.id == domain_addresses.c.domain_id,
        domain_addresses.c.last_seen == domains.c.resolved_at,
    )


def _flagged(conn: sa.Connection) -> list[str]:
    c = address_flags.c
    stmt = sa.select(c.ip).where(c.state == "open").distinct().order_by(c.ip)
    return list(conn.execute(stmt).scalars())


def _intended(conn: sa.Connection) -> list[str]:
    """The current addresses of intended names, the best-ranked names' first.

    Names first, then their addresses by the primary key: joined the other way round, the
    database walked every address of the index (seconds over a million names).
    """
    d, da = domains.c, domain_addresses.c
    marked = conn.execute(
        sa.select(d.id, d.rank, d.resolved_at).where(d.intended, d.resolved_at.is_not(None))
    ).all()
    of = {r.id: r for r in marked}
    best: dict[str, tuple[int, str]] = {}
    ids = sorted(of)
    for start in range(0, len(ids), 500):
        stmt = sa.select(da.domain_id, da.ip, da.last_seen).where(
            da.domain_id.in_(ids[start : start + 500])
        )
        for r in conn.execute(stmt):
            name = of[r.domain_id]
            if r.last_seen == name.resolved_at:
                key = (_UNRANKED if name.rank is None else name.rank, r.ip)
                best[r.ip] = min(best.get(r.ip, key), key)
    return sorted(best, key=lambda ip: best[ip])


def _shared(conn: sa.Connection, limit: int) -> list[str]:
    """The addresses hosting the most current indexed domains."""
    da = domain_addresses.c
    n = sa.func.count()
    stmt = (
        sa.select(da.ip)
        .select_from(domain_addresses.join(domains, _current()))
        .group_by(da.ip)
        .order_by(n.desc(), da.ip)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def _best_names(conn: sa.Connection, ips: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Return ip -> (its best-ranked current name: lowest rank, then name; its current
    names' count).

    Two aggregates, not a window: a CDN address hosts a third of the index, and sorting its
    names took seconds.
    """
    da, d = domain_addresses.c, domains.c
    rank = sa.func.coalesce(d.rank, _UNRANKED)
    joined = domain_addresses.join(domains, _current())
    out: dict[str, tuple[str, int]] = {}
    for start in range(0, len(ips), 500):
        chunk = ips[start : start + 500]
        stmt = (
            sa.select(da.ip, sa.func.count().label("n"), sa.func.min(rank).label("best"))
            .select_from(joined)
            .where(da.ip.in_(chunk))
            .group_by(da.ip)
        )
        counts = {r.ip: (int(r.n), int(r.best)) for r in conn.execute(stmt)}
        if not counts:
            continue
        wanted = [(ip, best) for ip, (_, best) in sorted(counts.items())]
        stmt = (
            sa.select(da.ip, sa.func.min(d.name).label("name"))
            .select_from(joined)
            .where(da.ip.in_(chunk), sa.tuple_(da.ip, rank).in_(wanted))  # by the index
            .group_by(da.ip)
        )
        out.update((r.ip, (r.name, counts[r.ip][0])) for r in conn.execute(stmt))
    return out


def document(found: list[dict[str, Any]], now: datetime.datetime) -> bytes:
    """Return GET /api/v1/addresses's body."""
    return _ENCODER.encode({"addresses": found, "generated_at": rfc3339(now, "seconds")})


class TargetCache:
    """The document, kept with its ETag, computed in a worker thread: at start (``start``),
    then again in the background when due while the readers get the one before; only the
    very first reader waits for it. One computation at a time."""

    def __init__(self, store: Store, cap: int, allow: Sequence[Network] = ()) -> None:
        self.store, self.cap, self.allow = store, cap, tuple(allow)
        self.watched_names: Callable[[], Mapping[str, str]] = dict
        self._body: bytes | None = None
        self._etag = ""
        self._at = 0.0
        self._stale = True
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def invalidate(self) -> None:
        """Say the selection may have changed (a flag opened or closed, names resolved)."""
        self._stale = True

    async def get(self) -> tuple[bytes, str]:
        """Return the document and its ETag; start computing it again when due. Raises
        StoreUnavailable when there is none yet and the database fails."""
        if self._body is None:
            await self.refresh()
        elif self._due():
            self.start()
        assert self._body is not None
        return self._body, self._etag

    def _due(self) -> bool:
        age = time.monotonic() - self._at
        return age > MAX_AGE_SECONDS or (self._stale and age > MIN_AGE_SECONDS)

    def start(self) -> None:
        """Compute the document again in the background, unless a computation runs."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh_logged())

    async def settled(self) -> None:
        """Wait for a computation in the background to end (before the store closes)."""
        if self._task is not None:
            await self._task

    async def refresh(self) -> None:
        """Compute the document now. Raises StoreUnavailable."""
        async with self._lock:
            self._stale = False
            try:
                body = await asyncio.to_thread(self._compute)
            except BaseException:
                self._stale = True
                raise
            self._body, self._at = body, time.monotonic()
            self._etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except StoreUnavailable as e:  # the readers keep the document before; tried again
            logs.event("computing the published addresses failed", logging.WARNING, error=str(e))

    def _compute(self) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        found = self.store.read(compute, self.cap, self.allow, self.watched_names())
        return document(found, now)
