"""Queries: every filter, keyset pagination in a stable order, cursors, counts and streaming."""

from __future__ import annotations

import base64
import datetime
import re
from typing import Any

import pytest
import sqlalchemy as sa

from collector.store import MAX_LIMIT, MeasurementQuery, MeasurementRow, Store
from collector.store import store as store_module
from probe import record
from tests.support.records import T0, record_id, row

HOUR = datetime.timedelta(hours=1)
BLOCKED_DNS = record.Verdict("blocked", "dns", "nxdomain")
BLOCKED_TLS = record.Verdict("blocked", "tls", "reset_sni")
OK = record.Verdict("ok")

# n -> (service, domain, asn, network, probe, verdict, hours after T0)
DATASET: dict[int, tuple[str, str, int, str, str, record.Verdict, int]] = {
    1: ("mycanal", "www.canalplus.com", 3215, "Orange", "p-orange", BLOCKED_DNS, 0),
    2: ("mycanal", "www.canalplus.com", 15557, "SFR", "p-sfr", OK, 1),
    3: ("mycanal", "static.canal-plus.net", 12322, "Free", "p-free", BLOCKED_TLS, 2),
    4: ("dazn", "www.dazn.com", 3215, "Orange", "p-orange", OK, 3),
    5: ("dazn", "www.dazn.com", 5410, "Bouygues", "p-bouygues", BLOCKED_DNS, 4),
    6: ("deezer", "www.deezer.com", 3215, "Orange", "p-orange2", record.Verdict("down"), 5),
    7: ("deezer", "www.deezer.com", 12322, "Free", "p-free", BLOCKED_DNS, 6),
}


def dataset_rows() -> list[MeasurementRow]:
    return [
        row(
            n,
            service=s,
            domain=d,
            asn=asn,
            network=net,
            probe_id=p,
            verdict=v,
            started_at=T0 + h * HOUR,
        )
        for n, (s, d, asn, net, p, v, h) in DATASET.items()
    ]


def ids(*numbers: int) -> list[str]:
    """Ids of dataset records, in the store's order (they were started in number order)."""
    return [record_id(n) for n in sorted(numbers, key=lambda n: DATASET[n][6])]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({}, [1, 2, 3, 4, 5, 6, 7]),
        ({"service": "mycanal"}, [1, 2, 3]),
        ({"domain": "www.dazn.com"}, [4, 5]),
        ({"asn": 3215}, [1, 4, 6]),
        ({"network": "Free"}, [3, 7]),
        ({"status": "blocked"}, [1, 3, 5, 7]),
        ({"status": "down"}, [6]),
        ({"method": "dns"}, [1, 5, 7]),
        ({"method": "tls"}, [3]),
        ({"probe_id": "p-orange"}, [1, 4]),
        ({"since": T0 + 2 * HOUR}, [3, 4, 5, 6, 7]),
        ({"until": T0 + 2 * HOUR}, [1, 2]),
        ({"since": T0 + HOUR, "until": T0 + 4 * HOUR}, [2, 3, 4]),
        ({"asn": 3215, "status": "blocked", "method": "dns"}, [1]),
        ({"service": "dazn", "asn": 12322}, []),
        ({"domain": "www.dazn.com", "since": T0 + 4 * HOUR}, [5]),
    ],
)
def test_every_filter_selects_exactly_its_records(
    store: Store, filters: dict[str, Any], expected: list[int]
) -> None:
    store.insert_batch(dataset_rows())
    q = MeasurementQuery(**filters)
    page = store.query_measurements(q)
    assert [item["id"] for item in page.items] == ids(*expected)
    assert page.next_cursor is None
    assert store.count_measurements(q) == len(expected)
    assert [item["id"] for item in store.iter_measurements(q)] == ids(*expected)


def test_filters_read_the_collectors_verdict_not_the_probes(store: Store) -> None:
    store.insert_batch([row(1, verdict=OK, probe_verdict=BLOCKED_DNS)])
    assert store.count_measurements(MeasurementQuery(status="blocked")) == 0
    assert store.count_measurements(MeasurementQuery(status="ok")) == 1


def test_since_and_until_compare_instants_across_time_zones(store: Store) -> None:
    paris = datetime.timezone(datetime.timedelta(hours=2))
    store.insert_batch(
        [
            row(1, started_at="2026-06-01T23:30:00Z"),
            row(2, started_at="2026-06-02T01:00:00+02:00"),  # 23:00Z, before record 1
            row(3, started_at="2026-06-02T00:15:00.5+00:00"),
        ]
    )
    everything = store.query_measurements(MeasurementQuery()).items
    assert [item["id"] for item in everything] == [record_id(2), record_id(1), record_id(3)]
    q = MeasurementQuery(since=datetime.datetime(2026, 6, 2, 1, 15, tzinfo=paris))
    assert [item["id"] for item in store.query_measurements(q).items] == [
        record_id(1),
        record_id(3),
    ]


def many_rows(count: int, *, first: int = 0, ties: int = 3) -> list[MeasurementRow]:
    """Rows whose started_at repeats ``ties`` times, so that the id must break ties."""
    return [
        row(n, started_at=T0 + datetime.timedelta(seconds=(n // ties) * 7))
        for n in range(first, first + count)
    ]


def expected_order(rows: list[MeasurementRow]) -> list[str]:
    return [r.id for r in sorted(rows, key=lambda r: (r.started_at, r.id))]


def all_pages(store: Store, q: MeasurementQuery) -> tuple[list[str], list[str]]:
    seen: list[str] = []
    cursors: list[str] = []
    cursor = None
    while True:
        page = store.query_measurements(
            MeasurementQuery(limit=q.limit, cursor=cursor, service=q.service)
        )
        seen += [item["id"] for item in page.items]
        if page.next_cursor is None:
            return seen, cursors
        cursor = page.next_cursor
        cursors.append(cursor)


def test_pages_return_each_record_once_in_stable_order(store: Store) -> None:
    rows = many_rows(25)
    store.insert_batch(rows[::-1])
    seen, cursors = all_pages(store, MeasurementQuery(limit=7))
    assert seen == expected_order(rows)
    assert len(cursors) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c) for c in cursors)
    assert all_pages(store, MeasurementQuery(limit=7))[0] == seen


def test_an_exact_multiple_of_the_limit_ends_without_an_empty_page(store: Store) -> None:
    store.insert_batch(many_rows(14))
    first = store.query_measurements(MeasurementQuery(limit=7))
    second = store.query_measurements(MeasurementQuery(limit=7, cursor=first.next_cursor))
    assert len(first.items) == len(second.items) == 7
    assert second.next_cursor is None


def test_paging_while_records_arrive_repeats_and_skips_nothing(store: Store) -> None:
    rows = many_rows(20)
    store.insert_batch(rows)
    page = store.query_measurements(MeasurementQuery(limit=6))
    seen = [item["id"] for item in page.items]
    store.insert_batch(
        [
            row(1000, started_at=T0 - HOUR),  # sorts before the cursor: not on later pages
            row(1001, started_at=rows[5].started_at),  # the cursor's time, a larger id: after it
        ]
    )
    late = 2000
    while page.next_cursor is not None:
        if late < 2003:  # one more record after everything, between pages
            store.insert_batch([row(late, started_at=T0 + (10 + late) * HOUR)])
            late += 1
        page = store.query_measurements(MeasurementQuery(limit=6, cursor=page.next_cursor))
        seen += [item["id"] for item in page.items]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in {r.id for r in rows}] == expected_order(rows)
    assert record_id(1000) not in seen
    assert {record_id(n) for n in (1001, 2000, 2001, 2002)} <= set(seen)
    assert len(seen) == 20 + 4


def test_pages_of_a_filtered_query_hold_only_matching_records(store: Store) -> None:
    rows = many_rows(12) + [
        row(n, service="dazn", started_at=T0 + n * HOUR) for n in range(100, 112)
    ]
    store.insert_batch(rows)
    seen, _ = all_pages(store, MeasurementQuery(limit=5, service="dazn"))
    assert seen == [record_id(n) for n in range(100, 112)]


def cursor_of(value: Any) -> str:
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!!",
        "bm90IGpzb24",  # "not json"
        cursor_of(["2026-03-01T20:00:00+00:00"]),
        cursor_of(["yesterday", "x"]),
        cursor_of(["2026-03-01T20:00:00", "x"]),  # no time zone
        cursor_of(["2026-03-01T20:00:00+00:00", 5]),
        cursor_of(["2026-03-01T20:00:00+00:00", "a\x00b"]),
        cursor_of({"t": 1}),
        base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_bad_cursor_is_a_value_error_about_the_cursor(cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^cursor: "):
        MeasurementQuery(cursor=cursor)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"since": datetime.datetime(2026, 1, 1)}, "since"),
        ({"until": datetime.datetime(2026, 1, 1)}, "until"),
        ({"asn": -3}, "asn"),
        ({"asn": "3215"}, "asn"),
        ({"service": "a\x00"}, "service"),
        ({"domain": 5}, "domain"),
    ],
)
def test_a_bad_query_is_a_value_error_naming_the_argument(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        MeasurementQuery(**kwargs)


def test_the_default_page_is_100_and_the_largest_1000(store: Store) -> None:
    store.insert_batch(many_rows(1001))
    assert len(store.query_measurements(MeasurementQuery()).items) == 100
    page = store.query_measurements(MeasurementQuery(limit=MAX_LIMIT))
    assert len(page.items) == 1000 and page.next_cursor is not None


def selects(store: Store) -> list[str]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    return statements


def test_the_export_iterator_streams_5000_records_chunk_by_chunk(store: Store) -> None:
    rows = many_rows(5000, ties=7)
    for start in range(0, 5000, 1000):
        store.insert_batch(rows[start : start + 1000])
    statements = selects(store)
    iterator = store.iter_measurements(MeasurementQuery())
    head = [next(iterator) for _ in range(10)]
    assert len(statements) == 1  # lazy: one chunk read so far
    rest = list(iterator)
    assert [item["id"] for item in head + rest] == expected_order(rows)
    chunks = -(-5000 // store_module.EXPORT_CHUNK)
    assert len(statements) in (chunks, chunks + 1)


def test_the_export_iterator_honours_filters_and_a_starting_cursor(store: Store) -> None:
    rows = many_rows(30)
    store.insert_batch(rows)
    page = store.query_measurements(MeasurementQuery(limit=10))
    rest = list(store.iter_measurements(MeasurementQuery(cursor=page.next_cursor)))
    assert [item["id"] for item in page.items + rest] == expected_order(rows)
    assert list(store.iter_measurements(MeasurementQuery(service="nothing"))) == []
