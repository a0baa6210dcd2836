"""Batch ingest: idempotent by record id, whole or nothing, acknowledged after commit."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
from typing import Any

import pytest
import sqlalchemy as sa

from collector.store import (
    MeasurementQuery,
    MeasurementRow,
    Store,
    StoreUnavailable,
    open_store,
)
from probe import record
from tests.support import records
from tests.support.records import RECEIVED, measurement, row

EXTRA_KEYS = {"probe_verdict", "received_at"}


def stored_ids(store: Store) -> list[str]:
    return [item["id"] for item in store.iter_measurements(MeasurementQuery())]


def test_a_new_batch_is_inserted_whole(store: Store) -> None:
    outcome = store.insert_batch([row(n) for n in range(10)])
    assert (outcome.inserted, outcome.duplicates) == (10, 0)
    assert sorted(stored_ids(store)) == sorted(records.record_id(n) for n in range(10))


def test_a_resubmitted_batch_stores_nothing_twice_and_says_so(store: Store) -> None:
    batch = [row(n) for n in range(10)]
    store.insert_batch(batch)
    outcome = store.insert_batch(batch)
    assert (outcome.inserted, outcome.duplicates) == (0, 10)
    assert store.count_measurements(MeasurementQuery()) == 10


def test_a_partly_known_batch_stores_only_the_new_records(store: Store) -> None:
    store.insert_batch([row(n) for n in range(5)])
    outcome = store.insert_batch([row(n) for n in range(3, 9)])
    assert (outcome.inserted, outcome.duplicates) == (4, 2)
    assert outcome.new_ids == {records.record_id(n) for n in range(5, 9)}
    assert store.count_measurements(MeasurementQuery()) == 9


def test_an_id_repeated_inside_a_batch_counts_once(store: Store) -> None:
    outcome = store.insert_batch([row(1), row(1), row(2)])
    assert (outcome.inserted, outcome.duplicates) == (2, 0)
    outcome = store.insert_batch([row(1), row(1)])
    assert (outcome.inserted, outcome.duplicates, outcome.new_ids) == (0, 1, frozenset())


def test_the_first_stored_version_of_a_record_wins(store: Store) -> None:
    store.insert_batch([row(1, title="first")])
    store.insert_batch([row(1, title="second")])
    (item,) = store.iter_measurements(MeasurementQuery())
    assert item["http"]["title"] == "first"


def test_an_empty_batch_is_a_no_op(store: Store) -> None:
    outcome = store.insert_batch([])
    assert (outcome.inserted, outcome.duplicates) == (0, 0)
    assert store.count_measurements(MeasurementQuery()) == 0


def test_an_acknowledged_batch_is_visible_to_another_process_view(
    store: Store, db_url: str
) -> None:
    store.insert_batch([row(n) for n in range(3)])
    with open_store(db_url) as other:
        assert other.count_measurements(MeasurementQuery()) == 3


def fail_on_insert_of(store: Store, record_id: str) -> None:
    """Plant a trigger that makes the database refuse one row, as a full disk would."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON measurements WHEN NEW.id = '{record_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            return
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.id = '{record_id}' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON measurements "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )


def count_inserts(store: Store) -> list[str]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MEASUREMENTS"):
            statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    return statements


def test_a_failing_row_stores_nothing_of_its_batch(store: Store) -> None:
    store.insert_batch([row(n) for n in range(5)])
    batch = [row(n) for n in range(1100)]  # ids sort like n: the refused row is the last sent
    last = max(r.id for r in batch)
    fail_on_insert_of(store, last)
    inserts = count_inserts(store)
    with pytest.raises(StoreUnavailable, match="refused by the test"):
        store.insert_batch(batch)
    # the rows before it went to the database in earlier statements, and were rolled back
    assert len(inserts) >= 2
    assert store.count_measurements(MeasurementQuery()) == 5
    outcome = store.insert_batch([r for r in batch if r.id != last])
    assert (outcome.inserted, outcome.duplicates) == (1094, 5)


def test_threads_inserting_overlapping_batches_store_each_record_once(store: Store) -> None:
    batches = [[row(n) for n in range(start, start + 60)] for start in range(0, 300, 30)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(store.insert_batch, batches))
    assert sum(o.inserted for o in outcomes) == 330
    assert sum(o.duplicates for o in outcomes) == 270
    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == 330


def test_from_record_keeps_both_verdicts_and_the_collectors_network() -> None:
    m = measurement(7, verdict=record.Verdict("blocked", "dns", "nxdomain"))
    r = MeasurementRow.from_record(
        m,
        probe_id="probe-z",
        asn=12322,
        network="Free",
        received_at=RECEIVED,
        probe_verdict=record.Verdict("inconclusive"),
    )
    assert (r.status, r.method, r.detail) == ("blocked", "dns", "nxdomain")
    assert (r.probe_status, r.probe_method, r.probe_detail) == ("inconclusive", None, None)
    assert (r.asn, r.network, r.probe_id, r.cc) == (12322, "Free", "probe-z", "FR")
    assert (r.service, r.domain, r.category) == ("mycanal", "www.canalplus.com", "iptv_legal")
    assert r.doc["probe"] == {
        **m.to_dict()["probe"],
        "id": "probe-z",
        "asn": 12322,
        "network": "Free",
    }
    assert r.started_at == records.T0


def test_a_stored_record_reads_back_as_a_valid_record(store: Store) -> None:
    m = measurement(3, title="nul \x00 and accents é")
    stored = MeasurementRow.from_record(
        m,
        probe_id="probe-a",
        asn=3215,
        network="Orange",
        received_at=RECEIVED,
        probe_verdict=None,
    )
    store.insert_batch([stored])
    (item,) = store.iter_measurements(MeasurementQuery())
    assert item["probe_verdict"] is None
    assert item["received_at"] == "2026-03-01T21:00:00Z"
    back = record.Measurement.from_dict({k: v for k, v in item.items() if k not in EXTRA_KEYS})
    assert back == dataclasses.replace(m, probe=dataclasses.replace(m.probe, id="probe-a"))
    assert back.http is not None and back.http.title == "nul \x00 and accents é"


def test_the_probes_own_verdict_is_returned_beside_the_collectors(store: Store) -> None:
    store.insert_batch([row(1, probe_verdict=record.Verdict("ok"))])
    (item,) = store.iter_measurements(MeasurementQuery())
    assert item["verdict"] == {
        "status": "blocked",
        "method": "dns",
        "detail": "bogon",
        "blockpage": None,
    }
    assert item["probe_verdict"] == {
        "status": "ok",
        "method": None,
        "detail": None,
        "blockpage": None,
    }


@pytest.mark.parametrize(
    "change, field",
    [
        ({"domain": "www.canal\x00plus.com"}, "domain"),
        ({"service": "my\x00canal"}, "service"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-03-01T20:00:00"}, "started_at"),
    ],
)
def test_a_row_the_databases_cannot_hold_is_refused_before_storing(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        row(1, **change)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"asn": 2**32}, "asn"),
        ({"asn": -1}, "asn"),
        ({"network": "Or\x00ange"}, "network"),
        ({"probe_id": ""}, "probe_id"),
    ],
)
def test_a_bad_network_or_probe_is_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        row(1, **kwargs)


def test_a_record_without_the_collectors_verdict_is_refused() -> None:
    m = dataclasses.replace(measurement(1), verdict=None)
    with pytest.raises(ValueError, match="verdict"):
        MeasurementRow.from_record(
            m, probe_id="p", asn=None, network=None, received_at=RECEIVED, probe_verdict=None
        )


def test_a_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="received_at"):
        row(1, received_at=RECEIVED.replace(tzinfo=None))


def test_a_32_bit_asn_is_stored_and_found(store: Store) -> None:
    store.insert_batch([row(1, asn=4_200_000_001)])
    assert store.count_measurements(MeasurementQuery(asn=4_200_000_001)) == 1


def test_a_row_carries_its_document_encoded_as_stored() -> None:
    r = row(3)
    assert json.loads(r.doc_text) == r.doc
    changed = dataclasses.replace(r, doc={**r.doc, "extra": "é"})
    assert json.loads(changed.doc_text) == changed.doc  # encoded again, never stale
    with pytest.raises(ValueError, match=r"^doc: not encodable in UTF-8"):
        dataclasses.replace(r, doc={"title": "\ud800"})
