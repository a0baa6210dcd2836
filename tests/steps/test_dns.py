"""probe.steps.dns against a programmable DNS server on loopback."""

from __future__ import annotations

import pytest

from probe.record import EDE
from probe.steps import dns
from tests.support.dns_server import DNSServer, Zone

FAST = {"timeout_seconds": 2.0, "listen_extra_seconds": 0.2}


def spec(server: DNSServer, name: str, qtype: str = "A", **kw) -> dns.DNSSpec:
    return dns.DNSSpec(name=name, qtype=qtype, resolver=server.host, port=server.port, **FAST | kw)


@pytest.mark.parametrize(
    ("qtype", "expected"),
    [("A", ["192.0.2.1", "192.0.2.2"]), ("AAAA", ["2001:db8::1"])],
)
async def test_noerror(dns_server, qtype, expected):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.1", "192.0.2.2", "2001:db8::1"])
    r = await dns.measure(spec(dns_server, "ok.test", qtype))
    assert r.failure is None
    assert r.rcode == "NOERROR"
    assert sorted(r.answers) == expected
    assert (r.qtype, r.name, r.transport, r.second_reply) == (qtype, "ok.test", "udp", None)
    assert r.resolver == f"127.0.0.1:{dns_server.port}"
    assert r.cnames == [] and r.ede == []
    assert r.ms > 0
    transport, query = dns_server.queries[0]
    assert transport == "udp" and query.edns == 0  # EDNS, so that EDE can come back


async def test_ipv6_resolver_over_udp_and_tcp(dns_server6):
    dns_server6.zones["ok.test"] = Zone(addresses=["192.0.2.1"], truncate="empty")
    r = await dns.measure(spec(dns_server6, "ok.test"))
    assert (r.failure, r.answers, r.transport) == (None, ["192.0.2.1"], "tcp")
    assert r.resolver == f"[::1]:{dns_server6.port}"


@pytest.mark.parametrize(
    ("rcode", "failure"),
    [("NXDOMAIN", "dns_nxdomain_error"), ("SERVFAIL", "dns_server_failure")],
)
async def test_error_rcodes(dns_server, rcode, failure):
    dns_server.zones["bad.test"] = Zone(rcode=rcode)
    r = await dns.measure(spec(dns_server, "bad.test"))
    assert (r.rcode, r.failure, r.answers) == (rcode, failure, [])


async def test_refused_with_extended_error_censored(dns_server):
    # what Google Public DNS answers for a name under a French court order (DESIGN.md)
    dns_server.zones["blocked.test"] = Zone(rcode="REFUSED", ede=[(16, "Censored")])
    r = await dns.measure(spec(dns_server, "blocked.test"))
    assert (r.rcode, r.failure) == ("REFUSED", "dns_refused_error")
    assert r.ede == [EDE(code=16, text="Censored")]


async def test_noerror_without_answer_is_no_answer(dns_server):
    dns_server.zones["empty.test"] = Zone(addresses=["192.0.2.1"])  # A only: AAAA is empty
    r = await dns.measure(spec(dns_server, "empty.test", "AAAA"))
    assert (r.rcode, r.failure, r.answers) == ("NOERROR", "dns_no_answer", [])


async def test_cname_chain_in_order(dns_server):
    dns_server.zones["www.shop.test"] = Zone(
        cnames=["shop.cdn.test", "edge.cdn.test"], addresses=["192.0.2.7"]
    )
    r = await dns.measure(spec(dns_server, "www.shop.test"))
    assert r.failure is None
    assert r.cnames == ["shop.cdn.test", "edge.cdn.test"]
    assert r.answers == ["192.0.2.7"]


async def test_cname_without_address_keeps_the_chain(dns_server):
    dns_server.zones["alias.test"] = Zone(cnames=["target.test"], addresses=["192.0.2.8"])
    r = await dns.measure(spec(dns_server, "alias.test", "AAAA"))
    assert (r.failure, r.cnames) == ("dns_no_answer", ["target.test"])


async def test_resolver_timeout(dns_server):
    dns_server.zones["drop.test"] = Zone(silent=True)
    r = await dns.measure(spec(dns_server, "drop.test", timeout_seconds=0.3))
    assert (r.failure, r.rcode, r.answers) == ("generic_timeout_error", None, [])
    assert r.name == "drop.test"


async def test_lost_query_is_sent_again(dns_server):
    dns_server.zones["lossy.test"] = Zone(addresses=["192.0.2.7"], lose_udp=1)
    r = await dns.measure(spec(dns_server, "lossy.test", timeout_seconds=3.0))
    assert (r.failure, r.answers) == (None, ["192.0.2.7"])
    assert [t for t, q in dns_server.queries] == ["udp", "udp"]


async def test_closed_resolver_port_is_refused(closed_port):
    # the kernel answers ICMP port unreachable, seen on the connected UDP socket
    r = await dns.measure(
        dns.DNSSpec(name="x.test", qtype="A", resolver="127.0.0.1", port=closed_port, **FAST)
    )
    assert r.failure == "connection_refused"


@pytest.mark.parametrize("truncate", ["empty", "cut"])
async def test_truncated_reply_is_retried_over_tcp(dns_server, truncate):
    dns_server.zones["big.test"] = Zone(addresses=["192.0.2.10", "192.0.2.11"], truncate=truncate)
    r = await dns.measure(spec(dns_server, "big.test"))
    assert (r.failure, r.transport) == (None, "tcp")
    assert sorted(r.answers) == ["192.0.2.10", "192.0.2.11"]
    assert [t for t, _ in dns_server.queries] == ["udp", "tcp"]


async def test_second_different_reply_is_recorded(dns_server):
    dns_server.zones["inject.test"] = Zone(addresses=["192.0.2.20"], second=["10.200.9.9"])
    r = await dns.measure(spec(dns_server, "inject.test"))
    assert r.failure is None
    assert r.answers == ["192.0.2.20"]  # the first valid reply is the one used
    assert r.second_reply == ["10.200.9.9"]


async def test_listening_returns_at_the_first_reply_and_hears_the_second(dns_server):
    dns_server.zones["inject2.test"] = Zone(addresses=["192.0.2.21"], second=["10.200.9.9"])
    r, listen = await dns.measure_listening(spec(dns_server, "inject2.test"))
    assert (r.answers, r.second_reply, r.failure) == (["192.0.2.21"], None, None)
    assert not listen.done()  # still listening while the caller goes on
    assert await listen == ["10.200.9.9"]


async def test_listening_after_a_failure_has_nothing_to_hear(dns_server):
    dns_server.zones["gone2.test"] = Zone(rcode="NXDOMAIN")
    r, listen = await dns.measure_listening(spec(dns_server, "gone2.test"))
    assert r.failure == "dns_nxdomain_error"
    assert await listen is None


async def test_second_identical_reply_is_not_injection(dns_server):
    dns_server.zones["dup.test"] = Zone(addresses=["192.0.2.21"], second=["192.0.2.21"])
    r = await dns.measure(spec(dns_server, "dup.test"))
    assert (r.answers, r.second_reply) == (["192.0.2.21"], None)


async def test_no_extra_listening_when_disabled(dns_server):
    dns_server.zones["inject.test"] = Zone(addresses=["192.0.2.20"], second=["10.200.9.9"])
    r = await dns.measure(spec(dns_server, "inject.test", listen_extra_seconds=0))
    assert (r.answers, r.second_reply) == (["192.0.2.20"], None)


def test_resolver_text_names_the_port_only_when_not_53():
    r = dns.DNSSpec(name="x.test", qtype="A", resolver="192.0.2.53")
    assert dns._resolver_text(r) == "192.0.2.53"
    v6 = dns.DNSSpec(name="x.test", qtype="A", resolver="::1", port=5353)
    assert dns._resolver_text(v6) == "[::1]:5353"


def test_unknown_qtype_is_rejected():
    with pytest.raises(ValueError, match="qtype"):
        dns.DNSSpec(name="x.test", qtype="MX", resolver="127.0.0.1")


async def test_flow_folds_the_second_reply_into_the_record(dns_server):
    from probe.flow import DEFAULT_STEPS, Flow, FlowOptions
    from probe.record import ProbeInfo, Target

    dns_server.zones["inject3.test"] = Zone(addresses=["192.0.2.22"], second=["10.200.9.9"])
    opts = FlowOptions(resolver=dns_server.host, resolver_port=dns_server.port, qtypes=("A",))
    target = Target(
        service="s", url="https://inject3.test/", domain="inject3.test", category="general"
    )
    m = await Flow(opts, DEFAULT_STEPS).measure(target, ProbeInfo(software="test"))
    assert [(r.answers, r.second_reply) for r in m.dns] == [(["192.0.2.22"], ["10.200.9.9"])]
