"""Flags per (network, resolver path): each path's verdict of a record is a look of that path."""

from __future__ import annotations

import dataclasses
import datetime

import alembic.command
import pytest
import sqlalchemy as sa

from collector.judge import Findings, open_store, paths
from collector.judge import flags as stored_flags
from collector.judge.rules import Flag
from collector.store import MeasurementRow, migrate
from collector.store import measurements as stored_measurements
from collector.store.versioning import alembic_config
from tests.support.flags import T0, ingest, look

ISP_OK = ("system", "ok", None, None)
GOOGLE_REFUSED = ("google", "blocked", "dns", None)  # REFUSED, EDE 16 "Censored"


def pathed(
    probe: str,
    minutes: float,
    *verdicts: tuple[str, str, str | None, str | None],
    resolver_network: str | None = None,
    **kw: object,
) -> MeasurementRow:
    """A record of ``probe`` whose paths' verdicts are ``verdicts`` (name, status, method,
    blockpage), the primary first: the record's own verdict is the primary's."""
    _, status, method, blockpage = verdicts[0]
    row = look(probe, minutes, status, method, blockpage=blockpage, **kw)  # type: ignore[arg-type]
    doc = dict(row.doc)
    doc["paths"] = [
        {"path": name, "transport": "udp", "resolver": "192.0.2.53", "status": s,
         "method": m, "detail": None, "blockpage": b}
        for name, s, m, b in verdicts
    ]  # fmt: skip
    doc["probe"] = {**doc["probe"], "resolver_network": resolver_network}
    return dataclasses.replace(row, doc=doc)


def by_path(findings: Findings, **filters: object) -> list[tuple]:
    """The flags matching ``filters`` as sorted (network, resolver, method, state, scope)."""
    return sorted(
        (f["network"], f["resolver"], f["method"], f["state"], f["scope"])
        for f in findings.query_flags(**filters)  # type: ignore[arg-type]
    )


def test_each_path_of_a_record_is_a_look_named_as_the_flags_name_it() -> None:
    assert [r for r, _ in paths.looks(look("p1", 0))] == ["isp"]  # no paths: one resolver
    row = pathed("p1", 0, ISP_OK, GOOGLE_REFUSED, ("quad9_doh", "ok", None, None))
    found = paths.looks(row)
    assert [(r, o.status, o.method) for r, o in found] == [
        ("isp", "ok", None),
        ("google", "blocked", "dns"),
        ("quad9_doh", "ok", None),
    ]
    assert {o.record_id for _, o in found} == {row.id}


@pytest.mark.parametrize(
    "name, primary, resolver_network, system_elsewhere, expected",
    [
        ("system", True, "other", False, "isp"),  # the system's resolver is the line's
        ("box", True, "isp", False, "isp"),
        ("box", True, None, False, "isp"),  # unknown: as one resolver always counted
        ("google", True, "other", False, "google"),  # a line whose resolver is Google's
        ("google", True, "isp", True, "google"),  # the whoami described the system path
        ("google", False, "isp", False, "google"),
        ("system", False, "other", False, "isp"),
        (None, True, "other", False, "isp"),
        ("a" * 33, False, "isp", False, None),  # outside the grammar: no flag's name
        ("goo\x00gle", True, "other", False, None),
        ("goo\x00gle", True, "isp", False, "isp"),
    ],
)
def test_the_flags_name_of_a_path(
    name: str | None,
    primary: bool,
    resolver_network: str | None,
    system_elsewhere: bool,
    expected: str | None,
) -> None:
    assert paths.resolver_of(name, primary, resolver_network, system_elsewhere) == expected


def test_a_public_path_blocking_is_its_own_flag_beside_a_reachable_isp_path(
    findings: Findings,
) -> None:
    ingest(findings, pathed("o1", 0, ISP_OK, GOOGLE_REFUSED))
    opened = ingest(findings, pathed("o2", 1, ISP_OK, GOOGLE_REFUSED))
    assert [(f.network, f.resolver, f.method) for f in opened] == [("Orange", "google", "dns")]
    assert by_path(findings) == [("Orange", "google", "dns", "open", "network")]
    assert by_path(findings, resolver="isp") == []
    assert findings.flag_counts() == []  # the metrics say what networks block


def test_the_isp_path_and_a_google_path_are_flagged_separately(findings: Findings) -> None:
    isp_blocked = ("system", "blocked", "dns", None)
    ingest(findings, pathed("o1", 0, isp_blocked, GOOGLE_REFUSED))
    ingest(findings, pathed("o2", 1, isp_blocked, GOOGLE_REFUSED))
    assert by_path(findings) == [
        ("Orange", "google", "dns", "open", "network"),
        ("Orange", "isp", "dns", "open", "network"),
    ]
    [isp] = findings.query_flags(resolver="isp")
    [google] = findings.query_flags(resolver="google")
    assert isp["id"] != google["id"]
    assert findings.flag_counts() == [("Orange", "mycanal", "iptv_legal", "dns")]
    # the ISP's resolver mends; Google's still refuses: only the isp flag closes
    ingest(findings, pathed("o1", 60, ISP_OK, GOOGLE_REFUSED))
    ingest(findings, pathed("o2", 61, ISP_OK, GOOGLE_REFUSED))
    assert by_path(findings) == [
        ("Orange", "google", "dns", "open", "network"),
        ("Orange", "isp", "dns", "closed", "network"),
    ]


def test_the_isp_flag_keeps_the_id_of_a_flag_from_before_paths(findings: Findings) -> None:
    ingest(findings, pathed("o1", 0, ("system", "blocked", "dns", None)))
    ingest(findings, pathed("o2", 1, ("system", "blocked", "dns", None)))
    [flag] = findings.query_flags()
    before = Flag(
        3215, "Orange", "mycanal", "iptv_legal", "dns", "open",
        T0, T0 + datetime.timedelta(minutes=1), ("o1", "o2"), 0.75, (),
    )  # fmt: skip
    assert flag["id"] == stored_flags.flag_id(before)
    google = dataclasses.replace(before, resolver="google")
    assert stored_flags.flag_id(google) != flag["id"]


def test_google_blocking_on_every_network_reads_as_google_s(findings: Findings) -> None:
    for network, p in (("Orange", "o"), ("Free", "f")):
        ingest(findings, pathed(f"{p}1", 0, ISP_OK, GOOGLE_REFUSED, network=network))
        ingest(findings, pathed(f"{p}2", 1, ISP_OK, GOOGLE_REFUSED, network=network))
    assert by_path(findings) == [
        ("Free", "google", "dns", "open", "resolver"),
        ("Orange", "google", "dns", "open", "resolver"),
    ]
    # a third network's probe reaches the service through Google: no longer every network
    ingest(findings, pathed("s1", 2, ISP_OK, ("google", "ok", None, None), network="SFR"))
    assert by_path(findings, resolver="google") == [
        ("Free", "google", "dns", "open", "network"),
        ("Orange", "google", "dns", "open", "network"),
    ]


def test_a_public_resolver_blocking_everywhere_is_not_an_outage(findings: Findings) -> None:
    # Google refuses the name on every network while the lines' resolvers answer it: unlike
    # a failure every path shares, a flag (unfingerprinted evidence, two probes)
    for network, p in (("Orange", "o"), ("Free", "f"), ("SFR", "s")):
        ingest(findings, pathed(f"{p}1", 0, ISP_OK, GOOGLE_REFUSED, network=network))
    opened = ingest(findings, pathed("o2", 1, ISP_OK, GOOGLE_REFUSED))
    assert [(f.network, f.resolver) for f in opened] == [("Orange", "google")]


def test_a_failure_every_path_of_every_network_shares_is_still_an_outage(
    findings: Findings,
) -> None:
    down = ("system", "blocked", "tcp_ip", None)
    google_down = ("google", "blocked", "tcp_ip", None)
    for network, p in (("Free", "f"), ("SFR", "s")):
        ingest(findings, pathed(f"{p}1", 0, down, google_down, network=network))
    assert (
        ingest(findings, pathed("o1", 1, down, google_down), pathed("o2", 2, down, google_down))
        == []
    )


def test_a_line_whose_resolver_is_google_flags_google_not_its_isp(findings: Findings) -> None:
    primary = ("google", "blocked", "dns", None)
    ingest(findings, pathed("o1", 0, primary, resolver_network="other"))
    ingest(findings, pathed("o2", 1, primary, resolver_network="other"))
    assert by_path(findings) == [("Orange", "google", "dns", "open", "network")]


def test_revoking_a_probe_weighs_again_its_public_path_flags(findings: Findings) -> None:
    ingest(findings, pathed("o1", 0, ISP_OK, ("google", "blocked", "dns", "google_censored")))
    assert by_path(findings) == [("Orange", "google", "dns", "open", "network")]
    # o1 is no registered probe: revoking it changes nothing, and says so
    assert findings.revoke("o1", T0 + datetime.timedelta(minutes=5)) is None


def test_a_hostile_path_name_names_no_flag_and_fails_no_batch(findings: Findings) -> None:
    hostile = ("evil\x00" + "x" * 5000, "blocked", "dns", "ede_16")
    opened = ingest(findings, pathed("o1", 0, ("system", "blocked", "dns", "x"), hostile))
    assert [(f.resolver, f.method) for f in opened] == [("isp", "dns")]
    assert by_path(findings) == [("Orange", "isp", "dns", "open", "network")]


@pytest.mark.parametrize("bad", ["-google", "a" * 33, "goo gle", "", "google\x00", "é"])
def test_a_bad_resolver_filter_is_a_value_error(findings: Findings, bad: str) -> None:
    with pytest.raises(ValueError, match="resolver"):
        findings.query_flags(resolver=bad)


def test_a_database_at_0008_keeps_its_flags_ids_and_evidence(db_url: str) -> None:
    with open_store(db_url) as store:
        with store.engine.begin() as conn:
            alembic.command.upgrade(alembic_config(conn), "0008")
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    minutes = (recent - T0).total_seconds() / 60
    first = look("o1", minutes)
    with open_store(db_url) as store:
        with store.engine.begin() as conn:  # what 0008 stored: the record, the flag
            stored_measurements.insert(conn, [first])
            conn.execute(
                sa.text(
                    "INSERT INTO flags (id, network_key, asn, network, service, category, method,"
                    " state, first_seen, last_seen, probes, confidence, evidence, fingerprinted)"
                    " VALUES ('f0', '[3215,\"Orange\"]', 3215, 'Orange', 'mycanal', 'iptv_legal',"
                    " 'tcp_ip', 'open', :t, :t, '[\"x\"]', 0.5, '[]', false)"
                ),
                {"t": T0.replace(tzinfo=None)},
            )
    assert migrate(db_url) == ["0009", "0010"]
    with open_store(db_url) as store:
        findings = Findings(store)
        [kept] = findings.query_flags()
        assert (kept["id"], kept["resolver"]) == ("f0", "isp")
        # the record blocked before the upgrade is evidence still: a second probe opens
        [opened] = ingest(findings, look("o2", minutes + 1))
        assert (opened.resolver, opened.probes) == ("isp", ("o1", "o2"))
