"""The flag rules: opening, confidence, outages, contradiction and closing, rule by rule."""

from __future__ import annotations

import datetime
import itertools

from collector.judge.rules import Flag, Standing, confidence, evaluate
from collector.observation import Observation

T0 = datetime.datetime(2026, 11, 28, 20, 0, tzinfo=datetime.UTC)
_ids = itertools.count()


def obs(
    probe: str,
    minutes: float,
    status: str,
    method: str | None = None,
    blockpage: str | None = None,
    network: str = "Orange",
    asn: int = 3215,
) -> Observation:
    return Observation(
        record_id=f"r{next(_ids)}",
        probe_id=probe,
        asn=asn,
        network=network,
        service="mycanal",
        category="iptv_legal",
        started_at=T0 + datetime.timedelta(minutes=minutes),
        status=status,
        method=method,
        blockpage=blockpage,
    )


def open_flags(flags: list[Flag]) -> list[tuple[str, tuple[str, ...]]]:
    return [(f.method, f.probes) for f in flags if f.state == "open"]


def test_two_probes_agreeing_open_a_flag() -> None:
    flags = evaluate([obs("p1", 0, "blocked", "dns"), obs("p2", 1, "blocked", "dns")], [])
    assert open_flags(flags) == [("dns", ("p1", "p2"))]
    f = flags[0]
    assert (f.first_seen, f.last_seen) == (T0, T0 + datetime.timedelta(minutes=1))
    assert f.confidence == confidence(2, 1, False) == 0.75
    assert len(f.evidence) == 2


def test_one_unconfirmed_look_opens_nothing() -> None:
    assert evaluate([obs("p1", 0, "blocked", "tcp_ip")], []) == []


def test_fingerprinted_block_opens_at_once() -> None:
    flags = evaluate([obs("p1", 0, "blocked", "dns", blockpage="fr_anj")], [])
    assert open_flags(flags) == [("dns", ("p1",))]
    assert flags[0].confidence > 0.9


def test_second_cycle_of_one_probe_opens() -> None:
    flags = evaluate([obs("p1", 0, "blocked", "tls"), obs("p1", 60, "blocked", "tls")], [])
    assert open_flags(flags) == [("tls", ("p1",))]
    assert flags[0].confidence == confidence(1, 2, False)


def test_transient_failure_contradicted_by_a_peer_never_opens() -> None:
    looks = [
        obs("p1", 0, "blocked", "tcp_ip"),
        obs("p2", 1, "ok"),
        obs("p1", 60, "blocked", "tcp_ip"),
        obs("p2", 61, "ok"),
    ]
    assert open_flags(evaluate(looks, [])) == []


def test_outage_never_opens() -> None:
    down = [obs("p1", 0, "down"), obs("p2", 1, "down"), obs("p1", 60, "down")]
    assert evaluate(down, []) == []


def test_failure_shared_by_every_network_is_an_outage() -> None:
    mine = [obs("p1", 0, "blocked", "tcp_ip"), obs("p2", 1, "blocked", "tcp_ip")]
    others = [
        obs("p3", 0, "blocked", "tcp_ip", network="Free", asn=12322),
        obs("p4", 2, "blocked", "tcp_ip", network="SFR", asn=15557),
    ]
    assert evaluate(mine, [], others) == []
    others.append(obs("p5", 3, "ok", network="Bouygues", asn=5410))
    assert open_flags(evaluate(mine, [], others)) == [("tcp_ip", ("p1", "p2"))]


def test_flag_closes_when_the_network_reaches_the_service_again() -> None:
    looks = [obs("p1", 0, "blocked", "dns"), obs("p2", 1, "blocked", "dns")]
    opened = evaluate(looks, [])
    looks += [obs("p1", 60, "ok")]
    still = evaluate(looks, opened)
    assert open_flags(still) == [("dns", ("p1", "p2"))]  # p2 still sees it
    looks += [obs("p2", 61, "ok")]
    closed = evaluate(looks, still)
    assert [(f.state, f.closed_at) for f in closed] == [
        ("closed", T0 + datetime.timedelta(minutes=61))
    ]


def test_reopened_flag_counts_only_new_evidence() -> None:
    looks = [
        obs("p1", 0, "blocked", "dns"),
        obs("p2", 1, "blocked", "dns"),
        obs("p1", 60, "ok"),
        obs("p2", 61, "ok"),
    ]
    closed = evaluate(looks, evaluate(looks[:2], []))
    assert closed[0].state == "closed"
    looks += [obs("p1", 120, "blocked", "dns")]
    assert [f.state for f in evaluate(looks, closed)] == ["closed"]  # one new look: not yet
    looks += [obs("p2", 121, "blocked", "dns")]
    again = evaluate(looks, closed)
    assert open_flags(again) == [("dns", ("p1", "p2"))]
    assert again[0].first_seen == T0 + datetime.timedelta(minutes=120)


def test_confidence_grows_with_probes_cycles_and_fingerprints() -> None:
    values = [
        confidence(1, 1, False),
        confidence(2, 1, False),
        confidence(2, 3, False),
        confidence(2, 3, True),
    ]
    assert values == sorted(values) and len(set(values)) == 4
    assert all(0 <= v <= 1 for v in values)


def test_probes_of_one_source_network_are_one_probe() -> None:
    one = {p: Standing("net:a") for p in ("p1", "p2", "p3")}
    looks = [obs(p, i, "blocked", "dns") for i, p in enumerate(("p1", "p2", "p3"))]
    assert evaluate(looks, [], standings=one) == []
    two = one | {"p3": Standing("net:b")}
    [flag] = evaluate(looks, [], standings=two)
    assert (flag.state, flag.networks, flag.confidence) == ("open", 2, confidence(2, 1, False))


def test_a_probe_younger_than_a_cycle_does_not_count() -> None:
    at = T0 + datetime.timedelta(minutes=5)
    young = {"p2": Standing("net:b", registered_at=T0 - datetime.timedelta(minutes=30))}
    looks = [obs("p1", 0, "blocked", "dns"), obs("p2", 1, "blocked", "dns")]
    assert evaluate(looks, [], standings=young, at=at) == []
    later = at + datetime.timedelta(minutes=30)
    assert open_flags(evaluate(looks, [], standings=young, at=later)) == [("dns", ("p1", "p2"))]


def test_a_flag_resting_on_a_revoked_probe_closes() -> None:
    looks = [obs("p1", 0, "blocked", "dns"), obs("p2", 1, "blocked", "dns")]
    [flag] = evaluate(looks, [])
    at = T0 + datetime.timedelta(minutes=9)
    [after] = evaluate(looks, [flag], standings={"p2": Standing("net:b", revoked=True)}, at=at)
    assert (after.state, after.closed_at) == ("closed", at)
