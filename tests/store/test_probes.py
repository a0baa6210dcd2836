"""Probes: registration with a hashed token, lookup, last seen."""

from __future__ import annotations

import datetime

import pytest

from collector.store import ProbeRow, Store

UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARIS = datetime.timezone(datetime.timedelta(hours=1))


def test_a_registered_probe_is_found_by_its_token_hash(store: Store) -> None:
    made = store.register_probe("p-1", "hash-1", 3215, "Orange", NOW)
    assert made == ProbeRow("p-1", "hash-1", NOW, 3215, "Orange")
    assert store.probe_by_token_hash("hash-1") == made
    assert store.probe_by_token_hash("hash-2") is None
    assert store.probe_by_id("p-1") == made
    assert store.probe_by_id("p-2") is None


def test_a_probe_without_a_declared_network_is_fine(store: Store) -> None:
    store.register_probe("p-1", "hash-1", None, None, NOW)
    found = store.probe_by_token_hash("hash-1")
    assert found is not None
    assert (found.declared_asn, found.declared_network, found.last_seen_at) == (None, None, None)


def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    one_pm_in_paris = datetime.datetime(2026, 3, 1, 13, tzinfo=PARIS)
    store.register_probe("p-1", "hash-1", None, None, one_pm_in_paris)
    found = store.probe_by_id("p-1")
    assert found is not None
    assert found.created_at == NOW
    assert found.created_at.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize("probe_id, token_hash", [("p-1", "hash-other"), ("p-other", "hash-1")])
def test_a_taken_id_or_token_hash_is_refused_and_nothing_changes(
    store: Store, probe_id: str, token_hash: str
) -> None:
    store.register_probe("p-1", "hash-1", 3215, "Orange", NOW)
    with pytest.raises(ValueError, match="already registered"):
        store.register_probe(probe_id, token_hash, 12322, "Free", NOW)
    assert store.list_probes() == [ProbeRow("p-1", "hash-1", NOW, 3215, "Orange")]


def test_touch_records_when_and_where_a_probe_was_last_seen(store: Store) -> None:
    store.register_probe("p-1", "hash-1", 3215, "Orange", NOW)
    later = NOW + datetime.timedelta(hours=5)
    assert store.touch_probe("p-1", 12322, "Free", later) is True
    found = store.probe_by_token_hash("hash-1")
    assert found is not None
    assert (found.last_seen_at, found.last_asn, found.last_network) == (later, 12322, "Free")
    assert (found.declared_asn, found.declared_network) == (3215, "Orange")


def test_touching_an_unknown_probe_says_so(store: Store) -> None:
    assert store.touch_probe("nobody", 3215, "Orange", NOW) is False
    assert store.list_probes() == []


def test_list_probes_returns_every_probe_by_id(store: Store) -> None:
    for n in (3, 1, 2):
        store.register_probe(f"p-{n}", f"hash-{n}", None, None, NOW)
    assert [p.id for p in store.list_probes()] == ["p-1", "p-2", "p-3"]


@pytest.mark.parametrize(
    "args, field",
    [
        (("p\x00", "h", None, None, NOW), "probe_id"),
        (("p", "h", -1, None, NOW), "declared_asn"),
        (("p", "h", None, "Or\x00ange", NOW), "declared_network"),
        (("p", "h", None, None, NOW.replace(tzinfo=None)), "now"),
    ],
)
def test_bad_registration_values_are_value_errors(
    store: Store, args: tuple[object, ...], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        store.register_probe(*args)  # type: ignore[arg-type]
    assert store.list_probes() == []


def test_probe_counts_and_network_last_seen(store: Store) -> None:
    for n, network in enumerate(("Orange", "Orange", "Free", None)):
        store.register_probe(f"p{n}", f"h{n}", None, network, NOW)
    store.touch_probe("p0", 3215, "Orange", NOW + datetime.timedelta(minutes=50))
    store.touch_probe("p2", 12322, "Free", NOW + datetime.timedelta(minutes=5))
    now = NOW + datetime.timedelta(minutes=60)
    assert store.probe_counts(30 * 60, now) == [(None, 0, 1), ("Free", 0, 1), ("Orange", 1, 1)]
    assert store.network_last_seen() == [
        ("Free", (NOW + datetime.timedelta(minutes=5)).timestamp()),
        ("Orange", (NOW + datetime.timedelta(minutes=50)).timestamp()),
    ]
