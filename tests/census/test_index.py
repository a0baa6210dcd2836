"""The stored domain index on SQLite and PostgreSQL: imports, resolutions, the oldest-first walk."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from collector.census import index
from collector.store import Store, migrate, open_store
from collector.store.schema import domain_addresses, domains
from tests.store.conftest import db_url  # noqa: F401  (a fixture, shared)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    """A migrated store, on each backend in turn."""
    migrate(db_url)
    opened = open_store(db_url)
    yield opened
    opened.close()


def rows(store: Store) -> dict[str, tuple[int | None, bool]]:
    query = sa.select(domains.c.name, domains.c.rank, domains.c.intended)
    return {r.name: (r.rank, r.intended) for r in store.read(lambda c: c.execute(query).all())}


def ids(store: Store) -> dict[str, int]:
    query = sa.select(domains.c.name, domains.c.id)
    return {r.name: r.id for r in store.read(lambda c: c.execute(query).all())}


def pairs(store: Store) -> dict[tuple[int, str], tuple[datetime.datetime, datetime.datetime]]:
    c = domain_addresses.c
    query = sa.select(c.domain_id, c.ip, c.first_seen, c.last_seen)
    return {(r[0], r[1]): (r[2], r[3]) for r in store.read(lambda conn: conn.execute(query).all())}


def test_reimport_updates_ranks_adds_names_and_leaves_the_mark(store: Store) -> None:
    assert store.write(index.upsert, [("a.example", 1), ("b.example", 2)], T0, False) == (2, 0)
    assert store.write(index.upsert, [("b.example", 5), ("c.example", 6)], T0 + HOUR, False) == (
        1,
        1,
    )
    assert rows(store) == {
        "a.example": (1, False),
        "b.example": (5, False),
        "c.example": (6, False),
    }
    # a plain list (no ranks) keeps the ranks; --intended marks, a later plain import keeps it
    assert store.write(index.upsert, [("a.example", None), ("d.example", None)], T0, True) == (1, 1)
    assert store.write(index.upsert, [("a.example", 3)], T0, False) == (0, 1)
    assert rows(store)["a.example"] == (3, True)
    assert rows(store)["d.example"] == (None, True)
    assert store.read(index.count) == 4


def test_a_name_twice_in_one_chunk_takes_its_last_rank(store: Store) -> None:
    assert store.write(index.upsert, [("a.example", 1), ("a.example", 9)], T0, False) == (1, 0)
    assert rows(store) == {"a.example": (9, False)}


def test_resolutions_widen_first_and_last_seen_and_keep_the_current_invariant(
    store: Store,
) -> None:
    store.write(index.upsert, [("a.example", 1), ("b.example", 2)], T0, False)
    a, b = ids(store)["a.example"], ids(store)["b.example"]
    store.write(index.record, T0, {a: ["198.51.100.1", "2001:db8::1"], b: ["198.51.100.1"]})
    store.write(index.record, T0 + HOUR, {a: ["198.51.100.1", "203.0.113.9"], b: []})
    assert pairs(store) == {
        (a, "198.51.100.1"): (T0, T0 + HOUR),
        (a, "2001:db8::1"): (T0, T0),
        (a, "203.0.113.9"): (T0 + HOUR, T0 + HOUR),
        (b, "198.51.100.1"): (T0, T0),
    }
    assert store.read(index.current, "a.example") == {"198.51.100.1", "203.0.113.9"}
    assert store.read(index.current, "b.example") == set()  # answered nothing: no current one
    # a resolution recorded late (older than the latest) changes neither stamp nor current set
    store.write(index.record, T0 + HOUR / 2, {a: ["192.0.2.77"], b: ["192.0.2.77"]})
    assert store.read(index.current, "a.example") == {"198.51.100.1", "203.0.113.9"}
    assert store.read(index.current, "b.example") == set()
    assert pairs(store)[(a, "192.0.2.77")] == (T0 + HOUR / 2, T0 + HOUR / 2)


def test_the_walk_goes_never_resolved_first_then_oldest_and_skips_the_fresh(store: Store) -> None:
    store.write(index.upsert, [(f"n{i}.example", i) for i in range(6)], T0, False)
    by_name = ids(store)
    n = [by_name[f"n{i}.example"] for i in range(6)]
    store.write(index.record, T0 + 2 * HOUR, {n[0]: []})
    store.write(index.record, T0 + HOUR, {n[1]: [], n[2]: []})
    store.write(index.record, T0 + 5 * HOUR, {n[3]: []})  # fresh: not due before the cutoff
    cutoff = T0 + 3 * HOUR
    assert store.read(index.count_due, cutoff) == 5
    walked, after = [], None
    while page := store.read(index.due, cutoff, after, 2):
        walked += [d.id for d in page]
        after = page[-1]
    assert walked == [n[4], n[5], n[1], n[2], n[0]]


def test_the_walk_does_not_hand_out_a_name_twice_while_others_are_recorded(store: Store) -> None:
    store.write(index.upsert, [(f"n{i}.example", i) for i in range(5)], T0, False)
    cutoff = T0 + HOUR
    first = store.read(index.due, cutoff, None, 2)
    store.write(index.record, T0 + 2 * HOUR, {first[0].id: ["198.51.100.1"]})  # after the cutoff
    rest = store.read(index.due, cutoff, first[-1], 10)
    assert [d.name for d in first + rest] == [f"n{i}.example" for i in range(5)]
