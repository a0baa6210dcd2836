"""Flags through the store: opened, extended and closed batch after batch, history, filters."""

from __future__ import annotations

import datetime
import random

import alembic.command
import pytest

from collector import observation
from collector.judge import Findings, judgement, open_store
from collector.judge import flags as stored_flags
from collector.judge.rules import Flag, confidence, evaluate
from collector.observation import Observation
from collector.store import MeasurementQuery, MeasurementRow, Store, migrate
from collector.store import measurements as stored_measurements
from collector.store.versioning import alembic_config
from tests.support.flags import T0, at, ingest, look, summary


def test_flag_opens_on_a_second_probe_and_closes_when_both_reach_the_service(
    findings: Findings,
) -> None:
    first = look("p1", 0)
    assert ingest(findings, first) == []
    assert findings.query_flags() == []
    second = look("p2", 1)
    opened = ingest(findings, second)
    assert [(f.network, f.service, f.method, f.state) for f in opened] == [
        ("Orange", "mycanal", "dns", "open")
    ]
    [flag] = findings.query_flags()
    assert flag["asn"] == 3215 and flag["category"] == "iptv_legal"
    assert (flag["first_seen"], flag["last_seen"], flag["closed_at"]) == (at(0), at(1), None)
    assert flag["probes"] == ["p1", "p2"]
    assert flag["evidence"] == [first.id, second.id]
    assert flag["confidence"] == confidence(2, 1, False)
    assert ingest(findings, look("p1", 60, "ok", None)) == []
    assert summary(findings) == [("Orange", "mycanal", "dns", "open")]  # p2 still sees the block
    ingest(findings, look("p2", 61, "ok", None))
    [closed] = findings.query_flags()
    assert (closed["id"], closed["state"], closed["closed_at"]) == (flag["id"], "closed", at(61))


class Replay:
    """The pure rules applied to every record in memory, each batch judged on its own."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self.rows: dict[str, Flag] = {}  # flag id -> flag: the history, as the store keeps it

    def batch(self, rows: list[MeasurementRow], now: datetime.datetime) -> None:
        self.seen += [observation.of_measurement(r) for r in rows]
        since = now - judgement.WINDOW
        recent = sorted((o for o in self.seen if o.started_at >= since), key=lambda o: o.started_at)
        for net, service in sorted({(r.network, r.service) for r in rows}):
            mine = [o for o in recent if (o.network, o.service) == (net, service)]
            others = [o for o in recent if o.service == service and o.network != net]
            pair = [f for f in self.rows.values() if (f.network, f.service) == (net, service)]
            current = {f.method: f for f in sorted(pair, key=lambda f: f.first_seen)}
            for f in evaluate(mine, list(current.values()), others):
                self.rows[stored_flags.flag_id(f)] = f


def test_the_store_keeps_exactly_what_the_pure_rules_decide(
    store: Store, findings: Findings
) -> None:
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
        findings.judge_pending(now)
        replay.batch(batch, now)
    expected = [stored_flags.flag_view(f) for f in replay.rows.values()]
    assert sorted(findings.query_flags(), key=str) == sorted(expected, key=str)
    assert {f.state for f in replay.rows.values()} == {"open", "closed"}  # both were exercised


def test_a_reopened_flag_is_a_new_row_and_the_closed_one_stays(findings: Findings) -> None:
    ingest(findings, look("p1", 0), look("p2", 1))
    ingest(findings, look("p1", 60, "ok", None), look("p2", 61, "ok", None))
    assert ingest(findings, look("p1", 120)) == []  # one new look after closing: not yet
    [reopened] = ingest(findings, look("p2", 121))
    assert reopened.first_seen == T0 + datetime.timedelta(minutes=120)
    history = findings.query_flags()
    assert [(f["state"], f["first_seen"]) for f in history] == [
        ("open", at(120)),
        ("closed", at(0)),
    ]
    assert len({f["id"] for f in history}) == 2
    assert [f["state"] for f in findings.query_flags(state="closed")] == ["closed"]


def test_a_resubmitted_batch_changes_nothing_and_opens_nothing_twice(findings: Findings) -> None:
    batch = (look("p1", 0, blockpage="fr_orange_dns"),)
    assert len(ingest(findings, *batch)) == 1  # a fingerprinted block opens at once
    before = findings.query_flags()
    assert before[0]["confidence"] == confidence(1, 1, True)
    assert ingest(findings, *batch) == []
    assert findings.query_flags() == before


def test_a_failure_every_network_shares_is_an_outage_not_a_flag(findings: Findings) -> None:
    for network in ("Free", "SFR"):
        ingest(findings, look(f"{network}-1", 0, method="tcp_ip", network=network))
    assert ingest(findings, look("o1", 1, method="tcp_ip"), look("o2", 2, method="tcp_ip")) == []
    ingest(findings, look("b1", 3, "ok", None, network="Bouygues"))
    opened = ingest(findings, look("o1", 4, method="tcp_ip"))
    assert [(f.network, f.method) for f in opened] == [("Orange", "tcp_ip")]


def test_records_older_than_the_window_do_not_count(findings: Findings) -> None:
    ingest(findings, look("p1", -3 * 24 * 60))
    assert ingest(findings, look("p2", 0)) == []
    assert ingest(findings, look("p1", 1)) != []


def test_query_flags_filters(findings: Findings) -> None:
    ingest(findings, look("o1", 0), look("o2", 1))
    bein = {"service": "beinsports", "network": "Free"}
    ingest(
        findings,
        look("f1", 10, "blocked", "tcp_ip", **bein),
        look("f2", 11, "blocked", "tcp_ip", **bein),
    )
    ingest(findings, look("f1", 30, "ok", None, **bein))
    ingest(findings, look("f2", 31, "ok", None, **bein))
    ingest(findings, look("s1", 40, method="tls", network="SFR", service="deezer", blockpage="x"))
    orange = [("Orange", "mycanal", "dns", "open")]
    free = [("Free", "beinsports", "tcp_ip", "closed")]
    sfr = [("SFR", "deezer", "tls", "open")]
    assert summary(findings) == sorted(orange + free + sfr)
    assert summary(findings, asn=12322) == summary(findings, network="Free") == free
    assert summary(findings, service="deezer") == summary(findings, category="music") == sfr
    assert summary(findings, method="dns") == orange
    assert summary(findings, state="open") == sorted(orange + sfr)
    assert summary(findings, state="closed", network="Free", method="tcp_ip") == free
    since, until = T0 + datetime.timedelta(minutes=20), T0 + datetime.timedelta(minutes=35)
    assert summary(findings, since=since) == sorted(orange + free + sfr)
    assert summary(findings, since=since, until=until) == sorted(orange + free)
    assert summary(findings, since=T0 + datetime.timedelta(minutes=32)) == sorted(orange + sfr)
    assert summary(findings, until=T0 + datetime.timedelta(minutes=5)) == orange
    # the latest seen first: deezer (40), beinsports (11, then closed), mycanal (1)
    assert [f["service"] for f in findings.query_flags()] == ["deezer", "beinsports", "mycanal"]
    assert findings.flag_counts() == [
        ("Orange", "mycanal", "iptv_legal", "dns"),
        ("SFR", "deezer", "music", "tls"),
    ]


@pytest.mark.parametrize(
    "filters, field",
    [({"state": "gone"}, "state"), ({"asn": -1}, "asn"), ({"service": "a\x00"}, "service")],
)
def test_a_bad_flag_filter_is_a_value_error(findings: Findings, filters: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        findings.query_flags(**filters)


def test_a_database_at_0001_with_records_upgrades_and_judges_them(db_url: str) -> None:
    with open_store(db_url) as store:
        with store.engine.begin() as conn:
            alembic.command.upgrade(alembic_config(conn), "0001")
        with store.engine.begin() as conn:  # what ingest stored at 0001: the records alone
            stored_measurements.insert(
                conn, [look("p2", 0, "ok", None), look("p2", 61, "ok", None)]
            )
    assert migrate(db_url) == [f"{n:04}" for n in range(2, 11)]
    with open_store(db_url) as store:
        assert store.count_measurements(MeasurementQuery()) == 2
        findings = Findings(store)
        # p2's latest look, stored before the upgrade, contradicts p1's two cycles
        assert ingest(findings, look("p1", 0), look("p1", 62)) == []
        assert ingest(findings, look("p2", 63)) != []  # and its next look confirms them
