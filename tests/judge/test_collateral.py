"""Collateral through the store: each blocked address with every watched service behind it."""

from __future__ import annotations

from collector.judge import Findings
from tests.support.flags import SHARED, at, ingest, look, shared, summary


def test_one_blocked_shared_address_is_one_row_with_every_service_behind_it(
    findings: Findings,
) -> None:
    services = ("mycanal", "beinsports", "deezer")
    ingest(findings, *(shared("f1", 0, s, network="Free") for s in services))
    assert findings.query_collateral() == []  # one look of one probe: no flag yet
    ingest(findings, *(shared("f2", 1, s, network="Free") for s in services))
    assert summary(findings, state="open") == sorted(
        ("Free", s, "tcp_ip", "open") for s in services
    )
    expected = {
        "ip": SHARED,
        "asn": 12322,
        "network": "Free",
        "services": sorted(services),
        "first_seen": at(0),
        "last_seen": at(1),
    }
    assert findings.query_collateral() == [expected]
    assert (
        findings.query_collateral(network="Free")
        == findings.query_collateral(asn=12322)
        == [expected]
    )
    assert findings.query_collateral(network="Orange") == []
    assert findings.collateral_counts() == [("Free", 1, 3)]
    for n, probe in enumerate(("f1", "f2")):
        ingest(findings, *(shared(probe, 60 + n, s, False, network="Free") for s in services))
    assert summary(findings, state="open") == []
    assert findings.query_collateral() == [] and findings.collateral_counts() == []


def test_services_only_resolved_elsewhere_still_count_as_behind_the_address(
    findings: Findings,
) -> None:
    ingest(findings, shared("o1", 0, "deezer", False))  # the control resolves deezer to SHARED
    ingest(
        findings,
        shared("f1", 1, "mycanal", network="Free"),
        shared("f2", 2, "mycanal", network="Free"),
    )
    [row] = findings.query_collateral()
    assert (row["ip"], row["network"], row["services"]) == (SHARED, "Free", ["deezer", "mycanal"])


def test_a_service_that_moved_off_the_address_is_no_longer_behind_it(findings: Findings) -> None:
    ingest(findings, shared("o1", -3 * 24 * 60, "deezer", False))
    ingest(findings, look("o1", 0, "ok", None, service="deezer", ips=("104.16.3.3",)))
    ingest(
        findings,
        shared("f1", 1, "mycanal", network="Free"),
        shared("f2", 2, "mycanal", network="Free"),
    )
    assert [r["services"] for r in findings.query_collateral()] == [["mycanal"]]


def test_an_address_cut_during_an_earlier_flag_is_not_collateral_of_the_next(
    findings: Findings,
) -> None:
    ingest(
        findings,
        shared("f1", 0, "mycanal", network="Free"),
        shared("f2", 1, "mycanal", network="Free"),
    )
    ingest(
        findings,
        shared("f1", 60, "mycanal", False, network="Free"),
        shared("f2", 61, "mycanal", False, network="Free"),
    )
    own = "104.16.1.1"
    again = [
        look(p, 120 + n, method="tcp_ip", network="Free", ips=(SHARED, own), cut=(own,))
        for n, p in enumerate(("f1", "f2"))
    ]
    assert len(ingest(findings, *again)) == 1  # reopened; this time SHARED connects
    assert [(r["ip"], r["first_seen"]) for r in findings.query_collateral()] == [(own, at(120))]


def test_a_transient_address_failure_is_no_collateral(findings: Findings) -> None:
    ingest(findings, look("p1", 0, method="tcp_ip", cut=("104.16.1.1",)), look("p2", 1, "ok", None))
    ingest(
        findings, look("p1", 60, method="tcp_ip", cut=("104.16.1.1",)), look("p2", 61, "ok", None)
    )
    assert findings.query_flags() == [] and findings.query_collateral() == []


def test_addresses_that_are_not_addresses_are_ignored(findings: Findings) -> None:
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
    ingest(findings, *rows)
    assert [(r["ip"], r["services"]) for r in findings.query_collateral()] == [
        ("104.16.1.1", ["mycanal"])
    ]
