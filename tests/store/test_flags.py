"""Findings through the store: flags batch after batch, history, filters, collateral, probes."""

from __future__ import annotations

import datetime
import multiprocessing
import random
import time
from typing import Any

import alembic.command
import pytest
import sqlalchemy as sa

from collector.analysis.flags import Flag, Observation, confidence, evaluate
from collector.store import (
    MeasurementQuery,
    MeasurementRow,
    Store,
    judgement,
    migrate,
    open_store,
    pending,
)
from collector.store import flags as stored_flags
from collector.store import measurements as stored_measurements
from collector.store.versioning import alembic_config
from probe import record
from tests.store.conftest import reset_pg
from tests.store.records import record_id

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
NETWORKS = {"Orange": 3215, "Free": 12322, "SFR": 15557, "Bouygues": 5410}
CATEGORY = {"mycanal": "iptv_legal", "beinsports": "sports_legal", "deezer": "music"}
SHARED = "104.16.9.9"
_numbers = iter(range(1, 10**6))


def look(
    probe: str,
    minutes: float,
    status: str = "blocked",
    method: str | None = "dns",
    *,
    network: str = "Orange",
    service: str = "mycanal",
    ips: tuple[str, ...] = ("104.16.1.1",),
    cut: tuple[str, ...] = (),
    blockpage: str | None = None,
    controlled: bool = True,
) -> MeasurementRow:
    """Return a stored record of ``probe``; ``cut`` are addresses whose TCP connection failed."""
    domain = f"www.{service}.fr"
    n = next(_numbers)
    detail = {"dns": "nxdomain", "tcp_ip": "timeout", "tls": "reset"}.get(method or "")
    verdict = record.Verdict(status, method, detail if status == "blocked" else None, blockpage)
    tcp = [
        record.TCPResult(ip, 443, "generic_timeout_error" if ip in cut else None, 9) for ip in ips
    ]
    control = record.Control(
        dns=[record.DNSResult("9.9.9.9", "A", None, 5, "NOERROR", list(ips), name=domain)]
    )
    m = record.Measurement(
        id=record_id(n),
        probe=record.ProbeInfo(id=probe, software="surblocage/0.1.0", cc="FR"),
        target=record.Target(
            service, f"https://{domain}/", domain, CATEGORY.get(service, "general")
        ),
        started_at=(T0 + datetime.timedelta(minutes=minutes)).isoformat(),
        duration_ms=100,
        dns=[record.DNSResult("192.168.1.1", "A", None, 5, "NOERROR", list(ips), name=domain)],
        tcp=tcp,
        control=control if controlled else None,
        verdict=verdict,
    )
    return MeasurementRow.from_record(
        m,
        probe_id=probe,
        asn=NETWORKS[network],
        network=network,
        received_at=T0 + datetime.timedelta(minutes=minutes, seconds=5),
        probe_verdict=verdict,
    )


def ingest(store: Store, *rows: MeasurementRow, now: datetime.datetime | None = None) -> list:
    """Store one batch and bring the findings up to date, as the collector does."""
    store.insert_batch(rows)
    last = max(r.started_at for r in rows)
    return store.judge_pending(now or last + datetime.timedelta(minutes=1)).opened


def summary(store: Store, **filters: object) -> list[tuple]:
    return sorted(
        (f["network"], f["service"], f["method"], f["state"])
        for f in store.query_flags(**filters)  # type: ignore[arg-type]
    )


def at(minutes: float) -> str:
    return (T0 + datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def test_flag_opens_on_a_second_probe_and_closes_when_both_reach_the_service(store: Store) -> None:
    first = look("p1", 0)
    assert ingest(store, first) == []
    assert store.query_flags() == []
    second = look("p2", 1)
    opened = ingest(store, second)
    assert [(f.network, f.service, f.method, f.state) for f in opened] == [
        ("Orange", "mycanal", "dns", "open")
    ]
    [flag] = store.query_flags()
    assert flag["asn"] == 3215 and flag["category"] == "iptv_legal"
    assert (flag["first_seen"], flag["last_seen"], flag["closed_at"]) == (at(0), at(1), None)
    assert flag["probes"] == ["p1", "p2"]
    assert flag["evidence"] == [first.id, second.id]
    assert flag["confidence"] == confidence(2, 1, False)
    assert ingest(store, look("p1", 60, "ok", None)) == []
    assert summary(store) == [("Orange", "mycanal", "dns", "open")]  # p2 still sees the block
    ingest(store, look("p2", 61, "ok", None))
    [closed] = store.query_flags()
    assert (closed["id"], closed["state"], closed["closed_at"]) == (flag["id"], "closed", at(61))


class Replay:
    """The pure rules applied to every record in memory, batch after batch, each judged in turn."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self.rows: dict[str, Flag] = {}  # flag id -> flag: the history, as the store keeps it

    def batch(self, rows: list[MeasurementRow], now: datetime.datetime) -> None:
        self.seen += [observation(r) for r in rows]
        since = now - judgement.WINDOW
        recent = sorted((o for o in self.seen if o.started_at >= since), key=lambda o: o.started_at)
        for net, service in sorted({(r.network, r.service) for r in rows}):
            mine = [o for o in recent if (o.network, o.service) == (net, service)]
            others = [o for o in recent if o.service == service and o.network != net]
            pair = [f for f in self.rows.values() if (f.network, f.service) == (net, service)]
            current = {f.method: f for f in sorted(pair, key=lambda f: f.first_seen)}
            for f in evaluate(mine, list(current.values()), others):
                self.rows[stored_flags.flag_id(f)] = f


def observation(r: MeasurementRow) -> Observation:
    fields = ("probe_id", "asn", "network", "service", "category", "started_at", "status")
    return Observation(r.id, *(getattr(r, f) for f in fields), r.method, r.blockpage)  # type: ignore[arg-type]


def test_the_store_keeps_exactly_what_the_pure_rules_decide(store: Store) -> None:
    rnd = random.Random(5)
    probes = {"Orange": ("o1", "o2", "o3"), "Free": ("f1", "f2"), "SFR": ("s1",)}
    looks = [("ok", None), ("blocked", "dns"), ("blocked", "tcp_ip"), ("down", None)]
    replay, minutes = Replay(), 0.0
    for _ in range(120):
        network = rnd.choice(list(probes))
        probe, minutes = rnd.choice(probes[network]), minutes + rnd.choice((0.3, 2, 45))
        batch = []
        for service in ("mycanal", "deezer"):
            status, method = rnd.choices(looks, weights=(5, 3, 2, 1))[0]
            fingerprint = "fr" if method == "dns" and rnd.random() < 0.1 else None
            batch.append(
                look(
                    probe,
                    minutes,
                    status,
                    method,
                    network=network,
                    service=service,
                    blockpage=fingerprint,
                )
            )
        now = T0 + datetime.timedelta(minutes=minutes + 1)
        store.insert_batch(batch)
        store.judge_pending(now)
        replay.batch(batch, now)
    expected = [stored_flags.flag_view(f) for f in replay.rows.values()]
    assert sorted(store.query_flags(), key=str) == sorted(expected, key=str)
    assert {f.state for f in replay.rows.values()} == {"open", "closed"}  # both were exercised


def test_a_reopened_flag_is_a_new_row_and_the_closed_one_stays(store: Store) -> None:
    ingest(store, look("p1", 0), look("p2", 1))
    ingest(store, look("p1", 60, "ok", None), look("p2", 61, "ok", None))
    assert ingest(store, look("p1", 120)) == []  # one new look after closing: not yet
    [reopened] = ingest(store, look("p2", 121))
    assert reopened.first_seen == T0 + datetime.timedelta(minutes=120)
    history = store.query_flags()
    assert [(f["state"], f["first_seen"]) for f in history] == [
        ("open", at(120)),
        ("closed", at(0)),
    ]
    assert len({f["id"] for f in history}) == 2
    assert [f["state"] for f in store.query_flags(state="closed")] == ["closed"]


def test_a_resubmitted_batch_changes_nothing_and_opens_nothing_twice(store: Store) -> None:
    batch = (look("p1", 0, blockpage="fr_orange_dns"),)
    assert len(ingest(store, *batch)) == 1  # a fingerprinted block opens at once
    before = store.query_flags()
    assert before[0]["confidence"] == confidence(1, 1, True)
    assert ingest(store, *batch) == []
    assert store.query_flags() == before


def test_a_failure_every_network_shares_is_an_outage_not_a_flag(store: Store) -> None:
    for network in ("Free", "SFR"):
        ingest(store, look(f"{network}-1", 0, method="tcp_ip", network=network))
    assert ingest(store, look("o1", 1, method="tcp_ip"), look("o2", 2, method="tcp_ip")) == []
    ingest(store, look("b1", 3, "ok", None, network="Bouygues"))
    opened = ingest(store, look("o1", 4, method="tcp_ip"))
    assert [(f.network, f.method) for f in opened] == [("Orange", "tcp_ip")]


def test_records_older_than_the_window_do_not_count(store: Store) -> None:
    ingest(store, look("p1", -3 * 24 * 60))
    assert ingest(store, look("p2", 0)) == []
    assert ingest(store, look("p1", 1)) != []


def test_query_flags_filters(store: Store) -> None:
    ingest(store, look("o1", 0), look("o2", 1))
    bein = {"service": "beinsports", "network": "Free"}
    ingest(
        store,
        look("f1", 10, "blocked", "tcp_ip", **bein),
        look("f2", 11, "blocked", "tcp_ip", **bein),
    )
    ingest(store, look("f1", 30, "ok", None, **bein))
    ingest(store, look("f2", 31, "ok", None, **bein))
    ingest(store, look("s1", 40, method="tls", network="SFR", service="deezer", blockpage="x"))
    orange = [("Orange", "mycanal", "dns", "open")]
    free = [("Free", "beinsports", "tcp_ip", "closed")]
    sfr = [("SFR", "deezer", "tls", "open")]
    assert summary(store) == sorted(orange + free + sfr)
    assert summary(store, asn=12322) == summary(store, network="Free") == free
    assert summary(store, service="deezer") == summary(store, category="music") == sfr
    assert summary(store, method="dns") == orange
    assert summary(store, state="open") == sorted(orange + sfr)
    assert summary(store, state="closed", network="Free", method="tcp_ip") == free
    since, until = T0 + datetime.timedelta(minutes=20), T0 + datetime.timedelta(minutes=35)
    assert summary(store, since=since) == sorted(orange + free + sfr)
    assert summary(store, since=since, until=until) == sorted(orange + free)
    assert summary(store, since=T0 + datetime.timedelta(minutes=32)) == sorted(orange + sfr)
    assert summary(store, until=T0 + datetime.timedelta(minutes=5)) == orange
    # the latest seen first: deezer (40), beinsports (11, then closed), mycanal (1)
    assert [f["service"] for f in store.query_flags()] == ["deezer", "beinsports", "mycanal"]
    assert store.flag_counts() == [
        ("Orange", "mycanal", "iptv_legal", "dns"),
        ("SFR", "deezer", "music", "tls"),
    ]


@pytest.mark.parametrize(
    "filters, field",
    [({"state": "gone"}, "state"), ({"asn": -1}, "asn"), ({"service": "a\x00"}, "service")],
)
def test_a_bad_flag_filter_is_a_value_error(store: Store, filters: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        store.query_flags(**filters)


def shared(
    probe: str, minutes: float, service: str, blocked: bool = True, **kw: object
) -> MeasurementRow:
    """A record of a service behind the shared address (and one address of its own)."""
    own = {"mycanal": "104.16.1.1", "beinsports": "104.16.2.2", "deezer": "104.16.3.3"}[service]
    if not blocked:
        return look(probe, minutes, "ok", None, service=service, ips=(SHARED, own), **kw)  # type: ignore[arg-type]
    return look(
        probe,
        minutes,
        method="tcp_ip",
        service=service,
        ips=(SHARED, own),
        cut=(SHARED,),
        **kw,  # type: ignore[arg-type]
    )


def test_one_blocked_shared_address_is_one_row_with_every_service_behind_it(store: Store) -> None:
    services = ("mycanal", "beinsports", "deezer")
    ingest(store, *(shared("f1", 0, s, network="Free") for s in services))
    assert store.query_collateral() == []  # one look of one probe: no flag yet
    ingest(store, *(shared("f2", 1, s, network="Free") for s in services))
    assert summary(store, state="open") == sorted(("Free", s, "tcp_ip", "open") for s in services)
    expected = {
        "ip": SHARED,
        "asn": 12322,
        "network": "Free",
        "services": sorted(services),
        "first_seen": at(0),
        "last_seen": at(1),
    }
    assert store.query_collateral() == [expected]
    assert store.query_collateral(network="Free") == store.query_collateral(asn=12322) == [expected]
    assert store.query_collateral(network="Orange") == []
    assert store.collateral_counts() == [("Free", 1, 3)]
    for n, probe in enumerate(("f1", "f2")):
        ingest(store, *(shared(probe, 60 + n, s, False, network="Free") for s in services))
    assert summary(store, state="open") == []
    assert store.query_collateral() == [] and store.collateral_counts() == []


def test_services_only_resolved_elsewhere_still_count_as_behind_the_address(store: Store) -> None:
    ingest(store, shared("o1", 0, "deezer", False))  # the control resolves deezer to SHARED
    ingest(
        store,
        shared("f1", 1, "mycanal", network="Free"),
        shared("f2", 2, "mycanal", network="Free"),
    )
    [row] = store.query_collateral()
    assert (row["ip"], row["network"], row["services"]) == (SHARED, "Free", ["deezer", "mycanal"])


def test_a_service_that_moved_off_the_address_is_no_longer_behind_it(store: Store) -> None:
    ingest(store, shared("o1", -3 * 24 * 60, "deezer", False))
    ingest(store, look("o1", 0, "ok", None, service="deezer", ips=("104.16.3.3",)))
    ingest(
        store,
        shared("f1", 1, "mycanal", network="Free"),
        shared("f2", 2, "mycanal", network="Free"),
    )
    assert [r["services"] for r in store.query_collateral()] == [["mycanal"]]


def test_an_address_cut_during_an_earlier_flag_is_not_collateral_of_the_next(store: Store) -> None:
    ingest(
        store,
        shared("f1", 0, "mycanal", network="Free"),
        shared("f2", 1, "mycanal", network="Free"),
    )
    ingest(
        store,
        shared("f1", 60, "mycanal", False, network="Free"),
        shared("f2", 61, "mycanal", False, network="Free"),
    )
    own = "104.16.1.1"
    again = [
        look(p, 120 + n, method="tcp_ip", network="Free", ips=(SHARED, own), cut=(own,))
        for n, p in enumerate(("f1", "f2"))
    ]
    assert len(ingest(store, *again)) == 1  # reopened; this time SHARED connects
    assert [(r["ip"], r["first_seen"]) for r in store.query_collateral()] == [(own, at(120))]


def test_a_transient_address_failure_is_no_collateral(store: Store) -> None:
    ingest(store, look("p1", 0, method="tcp_ip", cut=("104.16.1.1",)), look("p2", 1, "ok", None))
    ingest(store, look("p1", 60, method="tcp_ip", cut=("104.16.1.1",)), look("p2", 61, "ok", None))
    assert store.query_flags() == [] and store.query_collateral() == []


def test_addresses_that_are_not_addresses_are_ignored(store: Store) -> None:
    rows = [
        look(
            f"p{n}",
            n,
            method="tcp_ip",
            ips=("104.16.1.1", "nope", "1.2.3.4\x00"),
            cut=("104.16.1.1", "nope"),
        )
        for n in (1, 2)
    ]
    ingest(store, *rows)
    assert [(r["ip"], r["services"]) for r in store.query_collateral()] == [
        ("104.16.1.1", ["mycanal"])
    ]


def test_probe_counts_and_network_last_seen(store: Store) -> None:
    for n, network in enumerate(("Orange", "Orange", "Free", None)):
        store.register_probe(f"p{n}", f"h{n}", None, network, T0)
    store.touch_probe("p0", 3215, "Orange", T0 + datetime.timedelta(minutes=50))
    store.touch_probe("p2", 12322, "Free", T0 + datetime.timedelta(minutes=5))
    now = T0 + datetime.timedelta(minutes=60)
    assert store.probe_counts(30 * 60, now) == [(None, 0, 1), ("Free", 0, 1), ("Orange", 1, 1)]
    assert store.network_last_seen() == [
        ("Free", (T0 + datetime.timedelta(minutes=5)).timestamp()),
        ("Orange", (T0 + datetime.timedelta(minutes=50)).timestamp()),
    ]


def submit(url: str, batches: list[list[MeasurementRow]], together: Any, results: Any) -> None:
    """A collector process: store each batch and update the findings, in step with its peers."""
    store = open_store(url)
    try:
        opened = []
        for rows in batches:
            together.wait(timeout=60)  # every process starts its batch at the same time
            store.insert_batch(rows)
            now = max(r.started_at for r in rows) + datetime.timedelta(minutes=1)
            opened += [(f.service, f.method) for f in store.judge_pending(now).opened]
        results.put(("ok", opened))
    except Exception as e:
        together.abort()  # the peers stop waiting for this process
        results.put(("error", repr(e)))
    finally:
        store.close()


def run_collectors(url: str, plans: list[list[list[MeasurementRow]]], before: Any = None) -> list:
    context = multiprocessing.get_context("spawn")
    together, results = context.Barrier(len(plans)), context.Queue()
    workers = [context.Process(target=submit, args=(url, p, together, results)) for p in plans]
    for worker in workers:
        worker.start()
    if before is not None:
        before()
    outcomes = [results.get(timeout=100) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return outcomes


@pytest.mark.postgres
def test_a_second_writer_of_the_pair_waits_and_extends_the_first_ones_flag(
    pg_database: str,
) -> None:
    reset_pg(pg_database)
    migrate(pg_database)
    pair = (3215, "Orange", "mycanal")
    mine, theirs = look("p1", 10, blockpage="fr"), look("p2", 5, blockpage="fr")
    with open_store(pg_database) as store:
        store.insert_batch([mine])
        conn = store.engine.connect()
        tx = conn.begin()
        # this process is half-way through judging: flag written, not yet committed
        upto = pending.latest(conn)
        assert upto is not None
        chunk = judgement.judge_chunk(conn, T0, upto)
        assert [f.first_seen for f in chunk.opened] == [mine.started_at]

        def release_once_the_other_waits() -> None:
            waiting = wait_for_lock_wait(store, conn)
            tx.commit()
            conn.close()
            assert waiting == "advisory", waiting

        [outcome] = run_collectors(pg_database, [[[theirs]]], release_once_the_other_waits)
        assert outcome == ("ok", [])  # it extended the open flag instead of opening another
        [flag] = store.query_flags()
        assert store.flag_counts() == [(pair[1], pair[2], "iptv_legal", "dns")]
    assert (flag["state"], flag["first_seen"], flag["probes"]) == ("open", at(10), ["p1", "p2"])
    assert flag["evidence"] == [theirs.id, mine.id]


def wait_for_lock_wait(store: Store, holder: sa.Connection) -> str:
    """Return the lock type another backend of this database waits on, once one does."""
    mine = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    query = sa.text(
        "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> :mine"
    )
    deadline = time.monotonic() + 60  # a liveness bound, not a timing assertion
    with store.engine.connect() as conn:
        while time.monotonic() < deadline:
            found = conn.execute(query, {"mine": mine}).scalars().first()
            if found is not None:
                return str(found)
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the other collector never waited for a lock")


@pytest.mark.postgres
def test_two_processes_judging_the_same_pairs_open_one_flag_each(pg_database: str) -> None:
    reset_pg(pg_database)
    migrate(pg_database)
    services = [f"svc{n}" for n in range(12)]
    plans = [
        [
            [
                look(probe, r * 60 + k, service=s, blockpage="fr", controlled=False)
                for s in services[::step]
            ]
            for r in range(4)
        ]
        for k, (probe, step) in enumerate((("pa", 1), ("pb", -1)))
    ]
    outcomes = run_collectors(pg_database, plans)
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    opened = sorted(o for _, got in outcomes for o in got)
    assert opened == sorted((s, "dns") for s in services)  # each pair opened once, by one
    with open_store(pg_database) as store:
        found = store.query_flags()
    assert sorted((f["service"], f["state"], tuple(f["probes"])) for f in found) == sorted(
        (s, "open", ("pa", "pb")) for s in services
    )


def test_a_database_at_0001_with_records_upgrades_and_judges_them(db_url: str) -> None:
    with open_store(db_url) as store:
        with store.engine.begin() as conn:
            alembic.command.upgrade(alembic_config(conn), "0001")
        with store.engine.begin() as conn:  # what ingest stored at 0001: the records alone
            stored_measurements.insert(
                conn, [look("p2", 0, "ok", None), look("p2", 61, "ok", None)]
            )
    assert migrate(db_url) == ["0002", "0003", "0004", "0005"]
    with open_store(db_url) as store:
        assert store.count_measurements(MeasurementQuery()) == 2
        # p2's latest look, stored before the upgrade, contradicts p1's two cycles
        assert ingest(store, look("p1", 0), look("p1", 62)) == []
        assert ingest(store, look("p2", 63)) != []  # and its next look confirms them
