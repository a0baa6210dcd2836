"""The judgement pass: drains the pending pairs batch after batch, reading observations once.

Flags are judged after the acknowledgement, many batches at once, instead of before each ack.
A chunk of pending rows is judged in one transaction: the pairs' observations are read set-wise
(one statement for the looks of every service, one per network for the blocked looks, one for
the current flags); then batch after batch, in the order they were stored, the batch's looks are
applied and its pairs weighed on the looks received up to it by the rules
(collector/judge/rules.py), as if each batch had been judged on its own (so a block opened and
lifted between two passes stays in the history). The pairs of one service share one view of its
looks until a batch changes them, and a pair with nothing blocked and no flag open is left as it
is, as the rules would leave it. The flags and looks are written, and exactly the pending rows
judged are deleted. On PostgreSQL the pairs are locked first (advisory locks,
one order), so two processes never judge one pair at once, and a judge that waited for another
judges only what is still pending. Functions take a Connection inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing
from collections import defaultdict
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from collector import observation
from collector.judge import flags, pending
from collector.judge.looks import store as looks_store
from collector.judge.pending import Pair, order
from collector.judge.rules import DEFAULT_POLICY, Flag, Policy, Standing, evaluate
from collector.observation import Observation
from collector.store import probes
from collector.store.schema import ISP, blocked_looks, check_time, latest_looks, network_key

# The evidence a pair is judged on: records of the last two days, the latest blocked ones at most.
WINDOW = datetime.timedelta(days=2)
OBSERVATION_CAP = 1000
# Pending rows a transaction judges at most: a backlog is judged in several commits, so that
# ingest (SQLite's one writer) is never held back for long.
CHUNK_ROWS = 2000


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one chunk did: pending rows taken, distinct pairs judged, flags newly opened."""

    taken: int
    pairs: int
    opened: list[Flag]


def judge_chunk(
    conn: sa.Connection,
    now: datetime.datetime,
    upto: int,
    limit: int = CHUNK_ROWS,
    policy: Policy = DEFAULT_POLICY,
) -> Chunk:
    """Judge the oldest pending rows (``seq <= upto``, ``limit`` at most) and delete them."""
    check_time("now", now)
    taken = pending.take(conn, upto, limit)
    if not taken:
        return Chunk(0, 0, [])
    count = len(taken)
    if conn.dialect.name == "postgresql":
        flags.lock_pairs(conn, sorted({m.pair for m in taken}, key=order))
        taken = pending.still_waiting(conn, taken)  # what another judge did meanwhile is done
    opened = judge(conn, taken, now, policy) if taken else []
    pending.delete(conn, taken)
    return Chunk(count, len({m.pair for m in taken}), opened)


def judge(
    conn: sa.Connection,
    marks: Sequence[pending.Mark],
    now: datetime.datetime,
    policy: Policy = DEFAULT_POLICY,
) -> list[Flag]:
    """Judge the marked pairs batch after batch, in the order the batches were stored, as if
    each had been judged on its own: its looks applied, then its pairs weighed on the
    records received up to it (and the probes' standing then). The observations are read
    once for all; returns the flags newly opened (a flag opened and closed within the chunk
    counts: it was opened)."""
    since = now - WINDOW
    pairs = sorted({m.pair for m in marks}, key=order)
    state = _State(flags.current(conn, pairs), policy)
    looks = _looks(conn, {p[2] for p in pairs}, since)
    blocked = _blocked(conn, pairs, since)
    state.standings = _standings(conn, looks, blocked, state)
    opened: list[Flag] = []
    views = _Views(looks)
    for batch in _batches(marks):
        for m in batch:
            if m.look is not None and m.look.started_at >= since:
                _apply(looks, m.pair[3], m.look)
                views.changed(m.look.service)
        received = max(m.received_at for m in batch)
        for pair in sorted({m.pair for m in batch}, key=order):
            key = (network_key(pair[0], pair[1]), pair[3])
            seen = [o for r, o in blocked.get(pair, ()) if r <= received]
            if not seen and state.quiet(pair) and views.quiet(pair[2], key):
                continue  # nothing blocked, no flag open: the rules would leave its flags be
            opened += state.judged(pair, views.weighed(seen, pair[2], key), received)
    flags.write(conn, *state.changes())
    looks_store(conn, [(m.pair[3], m.look) for m in marks if m.look is not None])
    conn.execute(sa.delete(blocked_looks).where(blocked_looks.c.started_at < since))
    return opened


def _batches(marks: Sequence[pending.Mark]) -> list[list[pending.Mark]]:
    """Group the marks by batch, in the order the batches were marked."""
    grouped: dict[str, list[pending.Mark]] = {}
    for m in sorted(marks, key=lambda m: m.seq):
        grouped.setdefault(m.batch, []).append(m)
    return list(grouped.values())


Looks = dict[str, dict[tuple[str, str, str], Observation]]
"""service -> (network key, resolver path, probe id) -> that probe's latest ok-or-blocked look
through that path."""


def _apply(looks: Looks, resolver: str, look: Observation) -> None:
    """Keep ``look`` as its probe's latest through ``resolver`` unless the kept one is newer
    (a late record)."""
    held = looks.setdefault(look.service, {})
    key = (network_key(look.asn, look.network), resolver, look.probe_id)
    kept = held.get(key)
    if kept is None or (look.started_at, look.record_id) > (kept.started_at, kept.record_id):
        held[key] = look


Weighed = tuple[list[Observation], Sequence[Observation]]
"""A pair's observations (its blocked records and latest looks), and other networks' looks."""


@dataclasses.dataclass
class _View:
    """What the pairs of one service weigh of its latest looks: each (network key, resolver
    path)'s looks, those of them with a blocked look, every look as (network key, resolver
    path, look) in the order of the looks, and the other networks' vantages of each network
    key, made when first asked."""

    own: dict[tuple[str, str], list[Observation]]
    blocked: set[tuple[str, str]]
    looks: list[tuple[str, str, Observation]]
    others: dict[str, _Others]


class _Views:
    """The views of the services' latest looks, made once a service and kept until a batch
    applies a look of that service: the pairs of one service (its networks, their paths, the
    batches that bring no look of it) share one, instead of each pair going through every look
    of the service again."""

    def __init__(self, looks: Looks) -> None:
        self.looks = looks
        self.views: dict[str, _View] = {}
        self.relabelled: dict[tuple[str, str], Observation] = {}  # made once a chunk

    def changed(self, service: str) -> None:
        """Forget the view of ``service``: its looks changed."""
        self.views.pop(service, None)

    def quiet(self, service: str, key: tuple[str, str]) -> bool:
        """True when no latest look of the pair (``key``: network key, resolver path) of
        ``service`` is blocked."""
        return key not in self._of(service).blocked

    def weighed(self, blocked: list[Observation], service: str, key: tuple[str, str]) -> Weighed:
        """Return what the rules weigh of a pair (``key``: network key, resolver path) of
        ``service``: its blocked looks and its probes' latest looks, oldest first; and the
        latest looks of the other networks through every path, each (network, path) its own
        vantage, so that a failure is an outage only when it is shared through every path of
        every other network (a public resolver refusing a name everywhere while the lines' own
        resolvers answer it is a block, not an outage)."""
        view = self._of(service)
        mine = {o.record_id: o for o in blocked}
        for o in view.own.get(key, ()):
            mine.setdefault(o.record_id, o)
        others = view.others.get(key[0])
        if others is None:
            others = view.others[key[0]] = _Others(self, view, key[0])
        return sorted(mine.values(), key=lambda o: (o.started_at, o.record_id)), others

    def _of(self, service: str) -> _View:
        view = self.views.get(service)
        if view is None:
            view = self.views[service] = _View({}, set(), [], {})
            for (nkey, resolver, _), o in self.looks.get(service, {}).items():
                view.own.setdefault((nkey, resolver), []).append(o)
                view.looks.append((nkey, resolver, o))
                if o.status == "blocked":
                    view.blocked.add((nkey, resolver))
        return view

    def vantage(self, o: Observation, resolver: str) -> Observation:
        """Return ``o`` as a vantage of its own: the rules tell vantages apart by network
        (rules._everywhere), so a public path's look is labelled "<network> <path>"."""
        key = (o.record_id, resolver)
        found = self.relabelled.get(key)
        if found is None:
            found = self.relabelled[key] = observation.with_network(o, f"{o.network} {resolver}")
        return found


class _Others(Sequence[Observation]):
    """The other networks' vantages a pair of one service and network weighs, made on first
    read: the rules read them only for a flag about to open (the outage rule), a few pairs of
    a pass."""

    def __init__(self, views: _Views, view: _View, nkey: str) -> None:
        self.views, self.view, self.nkey = views, view, nkey
        self.made: tuple[Observation, ...] | None = None

    def _made(self) -> tuple[Observation, ...]:
        if self.made is None:
            self.made = tuple(
                o if resolver == ISP else self.views.vantage(o, resolver)
                for nkey, resolver, o in self.view.looks
                if nkey != self.nkey
            )
        return self.made

    @typing.overload
    def __getitem__(self, i: int) -> Observation: ...

    @typing.overload
    def __getitem__(self, i: slice) -> Sequence[Observation]: ...

    def __getitem__(self, i: int | slice) -> Observation | Sequence[Observation]:
        return self._made()[i]

    def __len__(self) -> int:
        return len(self._made())

    def __iter__(self) -> Iterator[Observation]:
        return iter(self._made())


class _State:
    """The flags of the judged pairs as the chunk goes, and what to write at its end."""

    def __init__(self, stored: dict[Pair, list[Flag]], policy: Policy) -> None:
        self.policy = policy
        self.standings: dict[str, Standing] = {}
        self.stored = {flags.flag_id(f): f for held in stored.values() for f in held}
        self.current = {p: {f.method: f for f in held} for p, held in stored.items()}
        self.now: dict[str, Flag] = dict(self.stored)

    def quiet(self, pair: Pair) -> bool:
        """True when no flag of ``pair`` is open."""
        return all(f.state != "open" for f in self.current[pair].values())

    def judged(self, pair: Pair, weighed: Weighed, at: datetime.datetime) -> list[Flag]:
        """Judge ``pair`` again as of ``at``; keep its flags; return those this judgement
        opened."""
        mine, others = weighed
        held = self.current[pair]
        opened = []
        found = evaluate(mine, list(held.values()), others, self.standings, self.policy, at)
        for f in (dataclasses.replace(f, resolver=pair[3]) for f in found):
            fid = flags.flag_id(f)
            before = self.now.get(fid)
            if f.state == "open" and (before is None or before.state != "open"):
                opened.append(f)
            self.now[fid] = f
            held[f.method] = f
        return opened

    def changes(self) -> tuple[list[Flag], list[Flag]]:
        """Return the flags to insert and those to overwrite."""
        new = [f for fid, f in self.now.items() if fid not in self.stored]
        changed = [f for fid, f in self.now.items() if fid in self.stored and self.stored[fid] != f]
        return new, changed


def _standings(
    conn: sa.Connection,
    looks: Looks,
    blocked: dict[Pair, list[tuple[datetime.datetime, Observation]]],
    state: _State,
) -> dict[str, Standing]:
    """Return the standing of every registered probe the chunk weighs or its flags name."""
    ids = {p for held in looks.values() for (_, _, p) in held}
    ids |= {o.probe_id for found in blocked.values() for _, o in found}
    ids |= {p for f in state.now.values() for p in f.probes}
    return {
        pid: Standing(row.source or f"probe:{pid}", row.created_at, row.revoked_at is not None)
        for pid, row in probes.of_ids(conn, ids).items()
    }


def _looks(conn: sa.Connection, services: set[str], since: datetime.datetime) -> Looks:
    """Return the stored latest looks of every probe of every network, through every path,
    at ``services``."""
    c = latest_looks.c
    stmt = sa.select(latest_looks).where(c.service.in_(sorted(services)), c.started_at >= since)
    out: Looks = defaultdict(dict)
    for row in conn.execute(stmt):
        out[row.service][(row.network_key, row.resolver, row.probe_id)] = observation.from_row(row)
    return out


def _blocked(
    conn: sa.Connection, pairs: Sequence[Pair], since: datetime.datetime
) -> dict[Pair, list[tuple[datetime.datetime, Observation]]]:
    """Return each pair's blocked looks since ``since`` with the time each was received,
    newest first, the latest OBSERVATION_CAP at most: one statement per network."""
    per_network: dict[tuple[int | None, str | None], set[str]] = defaultdict(set)
    wanted = set(pairs)
    for asn, network, service, _ in pairs:
        per_network[(asn, network)].add(service)
    b = blocked_looks.c
    out: dict[Pair, list[tuple[datetime.datetime, Observation]]] = defaultdict(list)
    for (asn, network), services in per_network.items():
        stmt = (
            sa.select(blocked_looks)
            .where(
                b.network_key == network_key(asn, network),
                b.service.in_(sorted(services)),
                b.started_at >= since,
            )
            .order_by(b.service, b.resolver, b.started_at.desc(), b.record_id.desc())
        )
        for row in conn.execute(stmt):
            pair = (asn, network, row.service, row.resolver)
            found = out[pair]
            if pair in wanted and len(found) < OBSERVATION_CAP:
                found.append((row.received_at, observation.from_row(row)))
    return out
