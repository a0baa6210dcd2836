"""Flags count aged probes and distinct source networks, not records; revoked probes count none."""

from __future__ import annotations

import datetime

from collector.judge import Findings
from collector.store import Store
from tests.support.flags import T0, ingest, look, summary

HOUR = datetime.timedelta(hours=1)
ORANGE_DNS = [("Orange", "mycanal", "dns", "open")]


def registered(store: Store, source: str, *probes: str, at: datetime.datetime = T0) -> None:
    """Register ``probes`` from one source network at ``at`` (before T0 - 1 h: aged)."""
    for p in probes:
        store.register_probe(p, f"hash-{p}", None, None, at, source=source)


def test_three_fresh_puppets_and_fifteen_invented_records_open_nothing(
    store: Store, findings: Findings
) -> None:
    # the attack as tried: three probes registered from one machine a moment before, and five
    # cycles of invented blocks each (with the rules counting records: confidence 0.97)
    registered(store, "net:one-machine", "x1", "x2", "x3", at=T0 - datetime.timedelta(minutes=1))
    for cycle in range(5):
        rows = [look(p, 2 * cycle + i / 10) for i, p in enumerate(("x1", "x2", "x3"))]
        assert ingest(findings, *rows) == []
    assert summary(findings) == []


def test_probes_from_one_source_network_count_as_one(store: Store, findings: Findings) -> None:
    registered(store, "net:one-machine", "x1", "x2", "x3", at=T0 - 2 * HOUR)
    assert ingest(findings, look("x1", 0), look("x2", 0.1), look("x3", 0.2)) == []
    assert summary(findings) == []
    registered(store, "net:elsewhere", "y1", at=T0 - 2 * HOUR)
    [opened] = ingest(findings, look("y1", 0.5))
    assert (opened.networks, opened.probes) == (2, ("x1", "x2", "x3", "y1"))
    [flag] = findings.query_flags()
    assert (flag["networks"], flag["state"]) == (2, "open")


def test_a_probe_counts_once_it_is_a_cycle_old(store: Store, findings: Findings) -> None:
    registered(store, "net:a", "a1", at=T0 - 2 * HOUR)
    registered(store, "net:b", "b1", at=T0 - datetime.timedelta(minutes=30))
    assert ingest(findings, look("a1", 0), look("b1", 1)) == []
    # 31 minutes later b1 has been registered an hour: its new look counts, and the earlier
    [opened] = ingest(findings, look("b1", 31))
    assert opened.probes == ("a1", "b1")


def test_min_networks_asks_for_more_sources(store: Store) -> None:
    from collector.judge.rules import Policy

    strict = Findings(store, Policy(min_networks=3))
    registered(store, "net:a", "a1", at=T0 - 2 * HOUR)
    registered(store, "net:b", "b1", at=T0 - 2 * HOUR)
    assert ingest(strict, look("a1", 0), look("b1", 0.5)) == []
    registered(store, "net:c", "c1", at=T0 - 2 * HOUR)
    [opened] = ingest(strict, look("c1", 1))
    assert opened.networks == 3


def test_revoking_the_only_second_source_closes_the_flag(store: Store, findings: Findings) -> None:
    registered(store, "net:a", "a1", at=T0 - 2 * HOUR)
    registered(store, "net:b", "b1", at=T0 - 2 * HOUR)
    ingest(findings, look("a1", 0), look("b1", 0.5))
    assert summary(findings) == ORANGE_DNS
    assert findings.revoke("b1", T0 + datetime.timedelta(minutes=5)) == 1
    findings.judge_pending(T0 + datetime.timedelta(minutes=6))
    assert summary(findings) == [("Orange", "mycanal", "dns", "closed")]
    assert store.probe_by_id("b1").revoked_at is not None  # type: ignore[union-attr]
    # and the revoked probe's later records count in no flag
    assert ingest(findings, look("b1", 10), look("a1", 10.5)) == []


def test_revoking_one_of_three_keeps_the_flag_on_the_others(
    store: Store, findings: Findings
) -> None:
    for p in ("a1", "b1", "c1"):
        registered(store, f"net:{p}", p, at=T0 - 2 * HOUR)
    ingest(findings, look("a1", 0), look("b1", 0.5), look("c1", 0.7))
    assert findings.revoke("c1", T0 + datetime.timedelta(minutes=5)) == 1
    findings.judge_pending(T0 + datetime.timedelta(minutes=6))
    [flag] = findings.query_flags()
    assert (flag["state"], flag["probes"], flag["networks"]) == ("open", ["a1", "b1"], 2)


def test_revoking_an_unknown_probe_says_so(findings: Findings) -> None:
    assert findings.revoke("p-nobody", T0) is None
