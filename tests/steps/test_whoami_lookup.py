"""probe.whoami against a DNS server on loopback standing for the whoami name's authority."""

from __future__ import annotations

from probe import whoami
from probe.flow import Flow, FlowOptions
from probe.record import ProbeInfo
from probe.resolvers import parse_path
from probe.runner import Runner
from tests.support.dns_server import Zone


def test_the_system_path_is_asked_else_a_plain_primary():
    system = parse_path("system").with_system("192.0.2.53")
    google, doh = parse_path("google=8.8.8.8"), parse_path("d=https://1.1.1.1/dns-query")
    assert whoami.path_for([google, system]) == system
    assert whoami.path_for([google, doh]) == google
    assert whoami.path_for([doh, google]) is None
    assert whoami.path_for([]) is None


async def test_the_runner_keeps_the_egress_address_in_the_probe_block(dns_server):
    dns_server.zones["whoami.test"] = Zone(addresses=["203.0.113.9"])
    path = parse_path(f"isp=127.0.0.1:{dns_server.port}")
    opts = FlowOptions(resolver="127.0.0.1", resolver_port=dns_server.port, paths=(path,))
    runner = Runner(Flow(opts), ProbeInfo(software="t"), None, None, whoami_name="whoami.test")
    assert await runner.learn_whoami() == "203.0.113.9"
    assert runner.probe.whoami == "203.0.113.9"
    assert dns_server.names() == ["whoami.test"]


async def test_no_answer_is_no_whoami(dns_server):
    dns_server.zones["whoami.test"] = Zone(rcode="NXDOMAIN")
    path = parse_path(f"isp=127.0.0.1:{dns_server.port}")
    opts = FlowOptions(resolver="127.0.0.1", resolver_port=dns_server.port, paths=(path,))
    runner = Runner(
        Flow(opts), ProbeInfo(software="t", whoami="198.51.100.1"), None, None, 8, "whoami.test"
    )
    assert await runner.learn_whoami() is None
    assert runner.probe.whoami is None  # last cycle's address is not this cycle's


async def test_googles_whoami_answers_in_txt(dns_server):
    name = "o-o.myaddr.l.google.com"
    dns_server.zones[name] = Zone(addresses=["edns0-client-subnet 192.0.2.0/24", "203.0.113.7"])
    path = parse_path(f"isp=127.0.0.1:{dns_server.port}")
    assert await whoami.egress(name, path, 2.0) == "203.0.113.7"
    assert dns_server.queries[0][1].question[0].rdtype == 16  # TXT
