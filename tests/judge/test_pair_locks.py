"""Judges of one pair in two processes on PostgreSQL: the second waits for the first's lock and
extends its flag; each pair is opened once, by one of them."""

from __future__ import annotations

import datetime
import multiprocessing
import time
from typing import Any

import pytest
import sqlalchemy as sa

from collector.judge import Findings, judgement, open_store, pending
from collector.store import MeasurementRow, Store, migrate
from tests.support.flags import T0, at, look
from tests.support.postgres import reset_pg


def submit(url: str, batches: list[list[MeasurementRow]], together: Any, results: Any) -> None:
    """A collector process: store each batch and update the findings, in step with its peers."""
    store = open_store(url)
    findings = Findings(store)
    try:
        opened = []
        for rows in batches:
            together.wait(timeout=60)  # every process starts its batch at the same time
            store.insert_batch(rows)
            now = max(r.started_at for r in rows) + datetime.timedelta(minutes=1)
            opened += [(f.service, f.method) for f in findings.judge_pending(now).opened]
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
        findings = Findings(store)
        [flag] = findings.query_flags()
        assert findings.flag_counts() == [(pair[1], pair[2], "iptv_legal", "dns")]
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
        found = Findings(store).query_flags()
    assert sorted((f["service"], f["state"], tuple(f["probes"])) for f in found) == sorted(
        (s, "open", ("pa", "pb")) for s in services
    )
