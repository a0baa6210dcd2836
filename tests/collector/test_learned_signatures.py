"""Block signatures learned from the positive controls (collector/judge/learned.py) and served
at GET /api/v1/signatures: the threshold (two probes, each for two positive controls), the
control-resolves-elsewhere condition, retirement, and the endpoint's bad input, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from collector.judge import learned
from collector.store import Store
from probe import record
from tests.collector.harness import Collector, answer_validator, running
from tests.support import records

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
CONTROLS = ("ctl-one", "ctl-two", "ctl-three")
REAL = "203.0.113.5"


def dns(
    answers: list[str], rcode: str = "NOERROR", failure: str | None = None,
    ede: list[record.EDE] | None = None, path: str | None = None,
) -> record.DNSResult:  # fmt: skip
    return record.DNSResult(
        "10.0.0.53", "A", failure, 3.0, rcode=rcode, answers=answers, ede=ede or [], path=path
    )


def doc(
    n: int, service: str, answer: record.DNSResult | None = None,
    control: record.Control | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A record of positive control ``service``: the line's resolver answers 127.0.0.1, the
    control resolves the name to REAL (unless given otherwise)."""
    control = control if control is not None else record.Control(dns=[dns([REAL])])
    m = records.measurement(
        n, service=service, domain=f"{service}.example", category="control",
        dns=[answer or dns(["127.0.0.1"])], tcp=[], tls=[], http=None, control=control,
    )  # fmt: skip
    return m.to_dict()


def seen(n: int, probe: str, service: str, **kw: Any) -> learned.Seen:
    return learned.Seen(
        records.record_id(n), probe, 64500, "LabISP", service,
        T0 + datetime.timedelta(minutes=n), doc(n, service, **kw),
    )  # fmt: skip


def learn(store: Store, *items: learned.Seen) -> list[dict[str, Any]]:
    store.write(learned.learn, list(items), set(CONTROLS))
    return list(store.read(learned.query))


# -- what one record teaches (pure)


def test_an_answer_the_control_does_not_share_is_observed() -> None:
    assert learned.observe(doc(1, "ctl-one")) == [
        learned.Observation("10.0.0.53", "address", "127.0.0.1")
    ]


def test_nothing_is_observed_unless_the_control_resolves_elsewhere() -> None:
    shared = record.Control(dns=[dns(["127.0.0.1", REAL])])
    failed = record.Control(failure="generic_timeout_error")
    gone = record.Control(dns=[dns([], "NXDOMAIN", "dns_nxdomain_error")])
    for control in (shared, failed, gone):
        assert learned.observe(doc(1, "ctl-one", control=control)) == []


def test_an_rcode_is_observed_with_its_extended_errors_and_its_path() -> None:
    refused = dns([], "REFUSED", "dns_refused_error", [record.EDE(16, "Censored")], "google")
    nx = dns([], "NXDOMAIN", "dns_nxdomain_error", path="isp")
    timeout = dns([], None, "generic_timeout_error", path="slow")
    d = doc(1, "ctl-one")
    d["dns"] = [record.encode(x) for x in (refused, nx, timeout)]
    assert learned.observe(d) == [
        learned.Observation("google", "rcode", "REFUSED+ede:16"),
        learned.Observation("isp", "rcode", "NXDOMAIN"),
    ]


def test_work_per_record_is_bounded() -> None:
    d = doc(1, "ctl-one")
    d["dns"] = [
        record.encode(dns([f"198.51.100.{i}", f"198.51.100.{i + 100}"], path=f"p{i}"))
        for i in range(16)
    ]
    assert len(learned.observe(d)) == learned.MAX_OBSERVATIONS


# -- learning and retiring, in the database


@pytest.fixture
def store(db_url: str) -> AsyncIterator[Store]:
    from collector.judge import open_store

    with open_store(db_url) as s:
        yield s


def test_one_probe_is_not_enough(store: Store) -> None:
    assert learn(store, seen(1, "p1", "ctl-one"), seen(2, "p1", "ctl-two"),
                 seen(3, "p1", "ctl-three")) == []  # fmt: skip


def test_one_control_is_not_enough(store: Store) -> None:
    assert learn(store, seen(1, "p1", "ctl-one"), seen(2, "p2", "ctl-one")) == []


def test_each_probe_must_see_two_controls(store: Store) -> None:
    # two probes and two controls, but each probe saw one name only
    assert learn(store, seen(1, "p1", "ctl-one"), seen(2, "p2", "ctl-two")) == []


def test_two_probes_each_on_two_controls_learn_a_signature(store: Store) -> None:
    found = learn(
        store, seen(1, "p1", "ctl-one"), seen(2, "p1", "ctl-two"), seen(3, "p2", "ctl-one"),
        seen(4, "p2", "ctl-two"),
    )  # fmt: skip
    assert [{k: s[k] for k in ("asn", "network", "resolver", "kind", "value", "probes",
                               "controls")} for s in found] == [
        {"asn": 64500, "network": "LabISP", "resolver": "10.0.0.53", "kind": "address",
         "value": "127.0.0.1", "probes": 2, "controls": 2},
    ]  # fmt: skip
    (s,) = found
    assert s["id"] == learned.signature_id(64500, "10.0.0.53", "address", "127.0.0.1")
    assert sorted(s["evidence"]) == sorted(records.record_id(n) for n in (1, 2, 3, 4))
    assert (s["first_seen"], s["last_seen"]) == ("2026-03-01T20:01:00Z", "2026-03-01T20:04:00Z")
    # a record of a service that is no positive control teaches nothing
    assert store.write(learned.learn, [seen(5, "p3", "mycanal")], set(CONTROLS)) == 0


def test_answers_the_control_shares_are_not_counted(store: Store) -> None:
    shared = record.Control(dns=[dns(["127.0.0.1"])])
    assert learn(
        store, *(seen(n, p, c, control=shared) for n, (p, c) in enumerate(
            [("p1", "ctl-one"), ("p1", "ctl-two"), ("p2", "ctl-one"), ("p2", "ctl-two")]))
    ) == []  # fmt: skip


def test_a_signature_the_control_answers_is_retired_for_good(store: Store) -> None:
    pairs = [("p1", "ctl-one"), ("p1", "ctl-two"), ("p2", "ctl-one"), ("p2", "ctl-two")]
    assert len(learn(store, *(seen(n, p, c) for n, (p, c) in enumerate(pairs)))) == 1
    # the control itself now gets 127.0.0.1 for a positive control: it is no block signature
    lying = record.Control(dns=[dns(["127.0.0.1"])])
    assert learn(store, seen(10, "p3", "ctl-three", control=lying)) == []
    # and the same evidence again does not bring it back
    assert learn(store, *(seen(20 + n, p, c) for n, (p, c) in enumerate(pairs))) == []


# -- the endpoint


@pytest.fixture
async def collector(db_url: str, tmp_path: pathlib.Path) -> AsyncIterator[Collector]:
    services = [
        {"id": c, "name": c, "category": "control", "urls": [f"https://{c}.example/"],
         "dns_only": True} for c in CONTROLS
    ] + [{"id": "mycanal", "name": "myCANAL", "category": "iptv_legal",
          "urls": ["https://www.canalplus.com/"]}]  # fmt: skip
    path = tmp_path / "watchlist.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    async with running(db_url, watchlist=str(path)) as c:
        yield c


def sent(n: int, service: str) -> dict[str, Any]:
    d = doc(n, service)
    d["probe"]["id"] = None
    return d


async def signatures(c: Collector, **params: Any) -> tuple[int, Any]:
    async with c.client.get("/api/v1/signatures", params=params) as r:
        return r.status, await r.json()


async def test_the_endpoint_serves_what_two_probes_taught(collector: Collector) -> None:
    for n0 in (0, 10):
        _, token = await collector.register(asn=3215, network="Orange")
        body = {"records": [sent(n0 + 1, "ctl-one"), sent(n0 + 2, "ctl-two")]}
        assert (await collector.submit(token, body))[0] == 200
        status, answer = await signatures(collector)
        assert status == 200
        assert len(answer["signatures"]) == (0 if n0 == 0 else 1)
    answer_validator("/api/v1/signatures", "get", "200").validate(answer)
    (s,) = answer["signatures"]
    fields = ("asn", "network", "resolver", "kind", "value", "probes", "controls")
    assert [s[k] for k in fields] == [3215, "Orange", "10.0.0.53", "address", "127.0.0.1", 2, 2]
    assert len(s["evidence"]) == 4
    assert (await signatures(collector, asn="3215", resolver="10.0.0.53"))[1] == answer
    assert (await signatures(collector, network="Orange"))[1] == answer
    assert (await signatures(collector, network="SFR"))[1] == {"signatures": []}
    assert (await signatures(collector, resolver="google"))[1] == {"signatures": []}


@pytest.mark.parametrize(
    "params, named",
    [({"asn": "x"}, "asn"), ({"asn": "-1"}, "asn"), ({"limit": "0"}, "limit"),
     ({"limit": "1001"}, "limit"), ({"bogus": "1"}, "bogus"), ({"network": "a\x00b"}, "network")],
)  # fmt: skip
async def test_bad_input_is_a_400_naming_the_parameter(
    collector: Collector, params: dict[str, str], named: str
) -> None:
    status, answer = await signatures(collector, **params)
    assert status == 400
    assert answer["error"].startswith(named), answer


async def test_probes_of_one_source_network_count_as_one(collector: Collector) -> None:
    # both registered from 127.0.0.1: one source, as for the flags (docs/security.md)
    for n0 in (0, 10):
        _, token = await collector.register(own_network=False, asn=3215, network="Orange")
        body = {"records": [sent(n0 + 1, "ctl-one"), sent(n0 + 2, "ctl-two")]}
        assert (await collector.submit(token, body))[0] == 200
    assert (await signatures(collector))[1] == {"signatures": []}


async def test_a_revoked_probe_counts_for_nothing(collector: Collector) -> None:
    from collector.store import probes as probes_mod

    first, token = await collector.register(asn=3215, network="Orange")
    body = {"records": [sent(1, "ctl-one"), sent(2, "ctl-two")]}
    assert (await collector.submit(token, body))[0] == 200
    collector.store.write(probes_mod.revoke, first, T0)
    _, token = await collector.register(asn=3215, network="Orange")
    body = {"records": [sent(11, "ctl-one"), sent(12, "ctl-two")]}
    assert (await collector.submit(token, body))[0] == 200
    assert (await signatures(collector))[1] == {"signatures": []}  # one probe left: not enough
    _, token = await collector.register(asn=3215, network="Orange")
    body = {"records": [sent(21, "ctl-one"), sent(22, "ctl-two")]}
    assert (await collector.submit(token, body))[0] == 200
    (s,) = (await signatures(collector))[1]["signatures"]
    assert (s["probes"], len(s["evidence"])) == (2, 4)  # the revoked probe's records left out


# -- the collector's own control settles what the records' controls claim


class OwnResolution:
    """The control vantage's step composer at its seam: every name resolves to ``answer``."""

    addresses_ignored = 0

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def measure(self, target: Any, probe: Any, **_: Any) -> record.Measurement:
        self.asked.append(target.url)
        http = record.HTTPResult(target.url, None, 1.0, status=200)
        return record.Measurement(
            record.new_id(), probe, target, "2026-03-01T20:00:00Z", 1.0,
            dns=[dns([self.answer])], http=http,
        )  # fmt: skip


@pytest.fixture
async def settled(db_url: str, tmp_path: pathlib.Path) -> AsyncIterator[tuple[Collector, Any]]:
    from collector.control import ControlVantage
    from probe.flow import FlowOptions

    services = [
        {"id": c, "name": c, "category": "control", "urls": [f"https://{c}.example/"],
         "dns_only": True} for c in CONTROLS
    ]  # fmt: skip
    path = tmp_path / "watchlist.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    own = OwnResolution(REAL)
    vantage = ControlVantage(FlowOptions(resolver="127.0.0.1"), cache_seconds=0, flow=own)  # type: ignore[arg-type]
    async with running(db_url, watchlist=str(path), control=vantage) as c:
        yield c, own


async def teach(c: Collector, *extra: dict[str, Any]) -> None:
    """Two probes of two source networks send both positive controls answered 127.0.0.1."""
    for n0 in (0, 10):
        _, token = await c.register(asn=3215, network="Orange")
        body = {"records": [sent(n0 + 1, "ctl-one"), sent(n0 + 2, "ctl-two"), *extra]}
        assert (await c.submit(token, body))[0] == 200


async def test_a_forged_control_teaches_nothing_the_collectors_own_does_not(
    settled: tuple[Collector, Any],
) -> None:
    c, own = settled
    own.answer = "127.0.0.1"  # the collector's own resolver gets the same answer: not a block
    await teach(c)
    assert (await signatures(c))[1] == {"signatures": []}
    assert own.asked  # it measured the positive controls itself


async def test_only_the_collectors_own_control_retires_a_signature(
    settled: tuple[Collector, Any],
) -> None:
    c, own = settled
    await teach(c)
    assert len((await signatures(c))[1]["signatures"]) == 1
    forged = sent(30, "ctl-one")  # its control claims 127.0.0.1: the signature's own answer
    forged["control"] = record.encode(record.Control(dns=[dns(["127.0.0.1"])]))
    _, token = await c.register(asn=3215, network="Orange")
    assert (await c.submit(token, {"records": [forged]}))[0] == 200
    assert len((await signatures(c))[1]["signatures"]) == 1  # the probe's word retires nothing
    own.answer = "127.0.0.1"  # the collector's own resolver now answers it: retired
    assert (await c.submit(token, {"records": [sent(31, "ctl-two")]}))[0] == 200
    assert (await signatures(c))[1] == {"signatures": []}


async def test_a_start_learns_again_what_a_crash_left_unlearned(
    db_url: str, tmp_path: pathlib.Path
) -> None:
    from collector.store.schema import learned_signatures, signature_observations

    services = [
        {"id": c, "name": c, "category": "control", "urls": [f"https://{c}.example/"],
         "dns_only": True} for c in CONTROLS
    ]  # fmt: skip
    path = tmp_path / "watchlist.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    async with running(db_url, watchlist=str(path)) as c:
        await teach(c)
        assert len((await signatures(c))[1]["signatures"]) == 1

        def forget(conn: Any) -> None:  # what a crash after the acks, before the pass, loses
            conn.execute(learned_signatures.delete())
            conn.execute(signature_observations.delete())

        c.store.write(forget)
    async with running(db_url, watchlist=str(path)) as c:  # the records are stored: learned again
        (s,) = (await signatures(c))[1]["signatures"]
        assert (s["kind"], s["value"], s["probes"], s["controls"]) == ("address", "127.0.0.1", 2, 2)
