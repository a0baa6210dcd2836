"""Pairs waiting for judgement: marked with their batch, durable, judged once, judged again."""

from __future__ import annotations

import datetime

import pytest

from collector.judge import Findings, judgement, open_store, pending
from collector.store import Store, migrate
from tests.support.flags import T0, at, look, summary
from tests.support.postgres import reset_pg

LATER = T0 + datetime.timedelta(minutes=30)


def test_a_batch_marks_each_of_its_pairs_once_and_a_resubmission_marks_nothing(
    store: Store, findings: Findings
) -> None:
    batch = [look("p1", 0), look("p1", 1), look("p1", 2, service="deezer")]
    store.insert_batch(batch)
    assert findings.pending_count() == 2
    store.insert_batch(batch)  # all duplicates: their pairs were marked with them
    assert findings.pending_count() == 2
    judged = findings.judge_pending(LATER)
    assert (judged.taken, judged.pairs) == (2, 2)
    assert findings.pending_count() == 0
    assert findings.judge_pending(LATER).pairs == 0  # nothing left: nothing judged


def test_a_pending_pair_survives_the_store_being_closed_unjudged(db_url: str) -> None:
    migrate(db_url)
    with open_store(db_url) as first:
        first.insert_batch([look("p1", 0, blockpage="fr")])
    # the collector stopped (or crashed) after the ack, before any judge ran
    with open_store(db_url) as second:
        findings = Findings(second)
        assert findings.pending_count() == 1
        assert findings.query_flags() == []
        opened = findings.judge_pending(LATER).opened
        assert [(f.network, f.service, f.method) for f in opened] == [("Orange", "mycanal", "dns")]
        assert findings.pending_count() == 0
        assert summary(findings) == [("Orange", "mycanal", "dns", "open")]


def test_a_backlog_is_judged_in_chunks_each_pair_once(
    store: Store, findings: Findings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(judgement, "CHUNK_ROWS", 3)
    services = ["mycanal", "deezer", "beinsports"]
    for n in range(4):  # four batches, each marking the three pairs again
        store.insert_batch([look("p1", n, service=s, blockpage="fr") for s in services])
    assert findings.pending_count() == 12
    judged = findings.judge_pending(LATER)
    assert judged.taken == 12
    assert sorted(f.service for f in judged.opened) == sorted(services)  # opened once each
    assert findings.pending_count() == 0
    assert summary(findings, state="open") == sorted(("Orange", s, "dns", "open") for s in services)


@pytest.mark.postgres
def test_a_pair_marked_while_it_is_judged_is_judged_again(pg_database: str) -> None:
    reset_pg(pg_database)
    migrate(pg_database)
    with open_store(pg_database) as store:
        store.insert_batch([look("p1", 0)])
        with store.engine.connect() as conn, conn.begin():
            upto = pending.latest(conn)
            assert upto is not None
            # half-way through a judgement: p1's one look opens nothing
            assert judgement.judge_chunk(conn, LATER, upto).opened == []
            # meanwhile another batch of the same pair is acknowledged
            store.insert_batch([look("p2", 1)])
        findings = Findings(store)
        assert findings.pending_count() == 1  # the judge deleted only the mark it judged
        opened = findings.judge_pending(LATER).opened
        assert [(f.service, f.probes) for f in opened] == [("mycanal", ("p1", "p2"))]
        assert findings.pending_count() == 0


def test_batches_judged_together_leave_the_history_of_batches_judged_one_by_one(
    store: Store, findings: Findings
) -> None:
    deezer = {"network": "SFR", "service": "deezer"}
    batches = [
        [look("s1", 0, **deezer)],  # SFR blocks Deezer: one probe sees it, then another
        [look("s2", 1, **deezer)],
        [look("s1", 60, "ok", None, **deezer)],  # and lifts the block
        [look("s2", 61, "ok", None, **deezer)],
    ]
    for rows in batches:
        store.insert_batch(rows)
    # one judgement of all four (the judge was behind): the block still opened, then closed
    opened = findings.judge_pending(T0 + datetime.timedelta(minutes=62)).opened
    assert [(f.network, f.service, f.state) for f in opened] == [("SFR", "deezer", "open")]
    [flag] = findings.query_flags()
    assert (flag["state"], flag["probes"]) == ("closed", ["s1", "s2"])
    assert (flag["first_seen"], flag["closed_at"]) == (at(0), at(61))


def test_a_flag_closed_and_reopened_within_one_judgement_is_two_rows(
    store: Store, findings: Findings
) -> None:
    store.insert_batch([look("p1", 0), look("p2", 1)])
    findings.judge_pending(T0 + datetime.timedelta(minutes=2))
    for minutes, status, method in ((60, "ok", None), (120, "blocked", "dns")):
        for n, probe in enumerate(("p1", "p2")):
            store.insert_batch([look(probe, minutes + n, status, method)])
    # the stored open flag closes, and a new one opens, in one transaction
    findings.judge_pending(T0 + datetime.timedelta(minutes=122))
    history = findings.query_flags()
    assert [(f["state"], f["first_seen"]) for f in history] == [
        ("open", at(120)),
        ("closed", at(0)),
    ]
