"""Records of several resolver paths in the collector: the paths' verdicts recomputed, the
probe's whoami address read against the ASN database, a whoami that is no address refused."""

from __future__ import annotations

import dataclasses

from collector import ingest
from probe import record
from tests.collector.harness import Collector
from tests.support import records

GOOGLE = record.DNSResult(
    "8.8.8.8", "A", "dns_refused_error", 9.0, rcode="REFUSED", ede=[record.EDE(16, "Censored")],
    path="google",
)  # fmt: skip


def with_paths(n: int, whoami: str | None) -> dict:
    m = records.measurement(n)
    isp = dataclasses.replace(m.dns[0], path="isp")
    probe = dataclasses.replace(m.probe, id=None, path="isp", whoami=whoami)
    sent = dataclasses.replace(m, probe=probe, dns=[isp, GOOGLE]).to_dict()
    # what a probe would have concluded with other fingerprints: the collector judges again
    sent["paths"] = [
        {"path": "isp", "transport": "udp", "resolver": "192.168.1.1", "status": "ok",
         "method": None, "detail": None, "blockpage": None},
    ]  # fmt: skip
    return sent


async def test_the_paths_verdicts_are_the_collectors(collector: Collector) -> None:
    _, token = await collector.register(asn=3215, network="Orange")
    status, _ = await collector.submit(token, {"records": [with_paths(1, "193.252.1.1")]})
    assert status == 200
    [item] = await collector.query_all()
    assert [(p["path"], p["status"], p["method"], p["blockpage"]) for p in item["paths"]] == [
        ("isp", "blocked", "dns", "ede_16"),
        ("google", "blocked", "dns", "ede_16"),
    ]
    assert item["probe"]["path"] == "isp"
    assert item["probe"]["whoami"] == "193.252.1.0/24"  # never the whole address
    # no ASN database here: the address is kept, its network unknown
    assert (item["probe"]["whoami_asn"], item["probe"]["resolver_network"]) == (None, None)


async def test_a_whoami_that_is_no_address_is_refused(collector: Collector) -> None:
    _, token = await collector.register(asn=3215, network="Orange")
    status, answer = await collector.submit(token, {"records": [with_paths(2, "<script>")]})
    assert status == 400
    assert "probe.whoami" in answer["error"]


def test_the_resolver_network_from_the_asn_database() -> None:
    asns = {"193.252.1.1": 3215, "8.8.8.8": 15169}
    assert ingest.resolver_network("193.252.1.1", 3215, asns.get) == {
        "whoami": "193.252.1.0/24", "whoami_asn": 3215, "resolver_network": "isp",
    }  # fmt: skip
    assert ingest.resolver_network("8.8.8.8", 3215, asns.get) == {
        "whoami": "8.8.8.0/24", "whoami_asn": 15169, "resolver_network": "other",
    }  # fmt: skip
    assert ingest.resolver_network("2001:db8::53", 3215, asns.get) == {
        "whoami": "2001:db8::/48", "whoami_asn": None, "resolver_network": None,
    }  # fmt: skip
    assert ingest.resolver_network(None, 3215, asns.get) == {}


async def test_paths_sent_for_a_record_of_one_resolver_are_not_kept(collector: Collector) -> None:
    _, token = await collector.register(asn=3215, network="Orange")
    sent = with_paths(3, None)
    sent["dns"] = [{**d, "path": None} for d in sent["dns"][:1]]
    sent["probe"]["path"] = None
    assert (await collector.submit(token, {"records": [sent]}))[0] == 200
    [item] = await collector.query_all()
    assert item["paths"] == []  # what the collector judged: no path, not what was sent


async def test_too_many_resolver_paths_are_refused(collector: Collector) -> None:
    _, token = await collector.register(asn=3215, network="Orange")
    sent = with_paths(4, None)
    sent["dns"] = [{**sent["dns"][0], "path": f"p{i}"} for i in range(record.MAX_PATHS + 1)]
    status, answer = await collector.submit(token, {"records": [sent]})
    assert status == 400
    assert "resolver paths" in answer["error"]
