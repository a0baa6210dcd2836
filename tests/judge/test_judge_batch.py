"""The judge weighs a chunk's pairs on views of each service's looks made once a batch: it must
decide exactly as weighing each pair on its own did (same flags, ids, evidence, confidence)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from collector.judge import Findings, judgement, open_store, pending
from collector.judge import flags as stored_flags
from collector.judge.looks import store as looks_store
from collector.judge.pending import order
from collector.judge.rules import Flag, Standing
from collector.observation import Observation
from collector.store import MeasurementRow, Store, migrate
from collector.store.schema import ISP, blocked_looks, flags, latest_looks, network_key
from tests.judge.test_resolver_flags import pathed
from tests.support.flags import T0

NETWORKS = ("Orange", "Free", "SFR", "Bouygues")
PROBES = {n: (f"{n[0].lower()}1", f"{n[0].lower()}2") for n in NETWORKS}
OK = ("system", "ok", None, None)
GOOGLE_REFUSED = ("google", "blocked", "dns", None)
QUAD9_OK = ("quad9_doh", "ok", None, None)
ISP_DNS = ("system", "blocked", "dns", None)
ISP_PAGE = ("system", "blocked", "dns", "orange_page")
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)
CHUNK = 7  # pending rows a chunk: batches are split across chunks too


def _weighed(
    blocked: list[Observation],
    looks: dict[tuple[str, str, str], Observation],
    key: tuple[str, str],
) -> tuple[list[Observation], list[Observation]]:
    """What a pair weighs, made for that pair alone from every latest look of its service (the
    judge's computation before it kept views a batch)."""
    mine = {o.record_id: o for o in blocked}
    others = []
    for (nkey, resolver, _), o in looks.items():
        if (nkey, resolver) == key:
            mine.setdefault(o.record_id, o)
        elif nkey != key[0]:
            vantage = Observation(**{**o.__dict__, "network": f"{o.network} {resolver}"})
            others.append(o if resolver == ISP else vantage)
    return sorted(mine.values(), key=lambda o: (o.started_at, o.record_id)), others


def _revoked(standings: dict[str, Standing], probe_id: str) -> bool:
    standing = standings.get(probe_id)
    return standing is not None and standing.revoked


def per_pair_judge(
    conn: sa.Connection, marks: Sequence[pending.Mark], now: datetime.datetime
) -> list[Flag]:
    """Judge ``marks`` as ``judgement.judge`` does, each pair weighed on its own."""
    since = now - judgement.WINDOW
    pairs = sorted({m.pair for m in marks}, key=order)
    state = judgement._State(stored_flags.current(conn, pairs), judgement.DEFAULT_POLICY)
    looks = judgement._looks(conn, {p[2] for p in pairs}, since)
    blocked = judgement._blocked(conn, pairs, since)
    state.standings = judgement._standings(conn, looks, blocked, state)
    opened: list[Flag] = []
    for batch in judgement._batches(marks):
        for m in batch:
            if m.look is not None and m.look.started_at >= since:
                judgement._apply(looks, m.pair[3], m.look)
        received = max(m.received_at for m in batch)
        for pair in sorted({m.pair for m in batch}, key=order):
            key = (network_key(pair[0], pair[1]), pair[3])
            seen = [o for r, o in blocked.get(pair, ()) if r <= received]
            mine, others = _weighed(seen, looks.get(pair[2], {}), key)
            others = [o for o in others if not _revoked(state.standings, o.probe_id)]
            opened += state.judged(pair, (mine, others), received)
    stored_flags.write(conn, *state.changes())
    looks_store(conn, [(m.pair[3], m.look) for m in marks if m.look is not None])
    conn.execute(sa.delete(blocked_looks).where(blocked_looks.c.started_at < since))
    return opened


Judge = Callable[[sa.Connection, Sequence[pending.Mark], datetime.datetime], list[Flag]]


def judge_all(store: Store, judge: Judge, now: datetime.datetime) -> list[Flag]:
    """Judge every pending row, CHUNK rows a transaction, with ``judge``."""

    def chunk(conn: sa.Connection) -> tuple[int, list[Flag]]:
        taken = pending.take(conn, 10**9, CHUNK)
        opened = judge(conn, taken, now) if taken else []
        pending.delete(conn, taken)
        return len(taken), opened

    opened: list[Flag] = []
    while True:
        taken, found = store.write(chunk)
        opened += found
        if taken < CHUNK:
            return opened


def cycle(minutes: float, second: bool, **changed: tuple[Any, ...]) -> list[MeasurementRow]:
    """One batch: a record of every network's first (or second) probe at every service, ISP
    path reaching mycanal and deezer, Google refusing mycanal on every network, every path
    failing beinsports alike (an outage), every ISP path alone hiding ygg; ``changed`` replaces
    the paths of "<network>_<service>"."""
    rows = []
    for i, network in enumerate(NETWORKS):
        probe = PROBES[network][int(second)]
        usual = {
            "mycanal": (OK, GOOGLE_REFUSED, QUAD9_OK),
            "beinsports": tuple(
                (name, "blocked", "tcp_ip", None) for name in ("system", "google", "quad9_doh")
            ),
            "deezer": (OK, ("google", "ok", None, None), QUAD9_OK),
            # every line's resolver hides it, the public ones answer: a block, not an outage
            "ygg": (ISP_DNS, ("google", "ok", None, None), QUAD9_OK),
        }
        for j, (service, verdicts) in enumerate(usual.items()):
            verdicts = changed.get(f"{network}_{service}", verdicts)
            at = minutes + (3 * i + j) / 100
            rows.append(pathed(probe, at, *verdicts, network=network, service=service))
    return rows


BLOCKED_MYCANAL = {"Orange_mycanal": (ISP_DNS, GOOGLE_REFUSED, QUAD9_OK)}
BLOCKED_MYCANAL["Free_mycanal"] = BLOCKED_MYCANAL["Orange_mycanal"]


def batches() -> list[list[MeasurementRow]]:
    """The scenario's batches, in order, with an empty batch where the judge passes."""
    sfr = {"SFR_deezer": (ISP_DNS, ("google", "ok", None, None), QUAD9_OK)}
    page = {"Orange_deezer": (ISP_PAGE, ("google", "ok", None, None), QUAD9_OK)}
    free = {"Free_mycanal": BLOCKED_MYCANAL["Free_mycanal"]}
    return [
        cycle(0, False, **BLOCKED_MYCANAL),
        cycle(1, True, **BLOCKED_MYCANAL),
        cycle(2, False, **BLOCKED_MYCANAL, **page),
        [],  # judged at 3 minutes
        # Orange lifts its block; SFR's second probe, revoked after the first pass, says deezer
        # is blocked
        cycle(62, False, **free) + cycle(62.5, True, **free, **sfr),
        cycle(65, True, **free, **sfr, **page),
        cycle(66, False, **free, **sfr),
        [],  # judged at 67 minutes
        # three days on, the blocks' evidence is out of the window: Free's flag closes on its
        # probes' looks alone
        cycle(3 * 24 * 60, True),
    ]


def scenario(
    store: Store, findings: Findings, judge: Judge, stored: list[list[MeasurementRow]]
) -> list[Flag]:
    """Store the batches and judge them with ``judge``; return the flags opened."""
    for probes in PROBES.values():
        for p in probes:
            store.register_probe(p, f"hash-{p}", None, None, T0 - 2 * HOUR, source=f"net:{p}")
    opened: list[Flag] = []
    passes = iter((T0 + 3 * MINUTE, T0 + 67 * MINUTE))
    for batch in stored:
        if batch:
            store.insert_batch(batch)
            continue
        at = next(passes)
        opened += judge_all(store, judge, at)
        if at == T0 + 3 * MINUTE:
            assert findings.revoke("s2", at + MINUTE) is not None
    return opened + judge_all(store, judge, T0 + datetime.timedelta(days=3, minutes=1))


def rows_of(store: Store, table: sa.Table) -> list[tuple[Any, ...]]:
    def read(conn: sa.Connection) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in conn.execute(sa.select(table)))

    return store.read(read)


def test_views_a_batch_decide_as_weighing_each_pair_alone(
    db_url: str, tmp_path_factory: Any
) -> None:
    results = []
    stored = batches()
    reference_url = f"sqlite:///{tmp_path_factory.mktemp('per-pair')}/surblocage.db"
    for url, judge in ((db_url, judgement.judge), (reference_url, per_pair_judge)):
        migrate(url)
        store = open_store(url)
        try:
            opened = scenario(store, Findings(store), judge, stored)
            results.append((opened, rows_of(store, flags), rows_of(store, latest_looks)))
        finally:
            store.close()
    (opened, stored, looks), expected = results
    assert (opened, stored, looks) == expected
    # the scenario holds what the views must get right: flags through the ISP's path, through
    # a path refusing mycanal on every network, a fingerprinted one; the outage opens none
    kinds = {(f.network, f.service, f.resolver, f.method, f.fingerprinted) for f in opened}
    assert kinds >= {
        ("Orange", "mycanal", "isp", "dns", False),
        ("Free", "mycanal", "isp", "dns", False),
        ("Orange", "mycanal", "google", "dns", False),
        ("Orange", "deezer", "isp", "dns", True),
        *((n, "ygg", "isp", "dns", False) for n in NETWORKS),
    }
    assert not any(f.service == "beinsports" for f in opened)
    names = [c.name for c in flags.c]
    closed = {
        (row[names.index("network")], row[names.index("resolver")])
        for row in stored
        if row[names.index("service")] == "mycanal" and row[names.index("state")] == "closed"
    }
    assert {("Orange", "isp"), ("Free", "isp")} <= closed  # lifted; evidence out of the window
