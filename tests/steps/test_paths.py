"""Several resolver paths in one target: real DNS, DoT and DoH servers on loopback, the flow's
connection step faked (tests/fake_steps.py), the verdict of each path."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest

from probe import verdict
from probe.flow import Flow, FlowOptions, Steps
from probe.record import Control, DNSResult, HTTPResult, ProbeInfo, Target, TCPResult
from probe.resolvers import parse_path
from probe.steps import dns
from tests.fake_steps import connection_step
from tests.steps.conftest import HOST, server_context
from tests.support import dns_server as dns_server_mod
from tests.support.dns_server import DNSServer, Zone
from tests.support.secure_dns_server import serving_doh, serving_dot
from tests.test_flow import FakeNet

REAL = "198.51.100.10"  # the service's address, as the control resolves it
TARGET = Target(service="s", url="http://blocked.test/", domain="blocked.test", category="general")


@pytest.fixture
async def isp() -> AsyncIterator[DNSServer]:
    async with dns_server_mod.serving("127.0.0.1") as server:
        yield server


async def measure(paths: list[str], net: FakeNet, ca_file: str | None = None):
    parsed = tuple(parse_path(p) for p in paths)
    opts = FlowOptions(
        resolver=parsed[0].address, resolver_port=parsed[0].port, paths=parsed, qtypes=("A",),
        ca_file=ca_file, allow_networks=(ipaddress.ip_network("198.51.100.0/24"),),
    )  # fmt: skip
    steps = Steps(dns=dns.measure_listening, connection=connection_step(net.tcp, net.tls, net.http))
    probe = ProbeInfo(software="test", path=parsed[0].name, resolver=parsed[0].text)
    return await Flow(opts, steps).measure(TARGET, probe)


CONTROL = Control(
    dns=[
        DNSResult(resolver="c", qtype="A", failure=None, ms=1, answers=[REAL], name=TARGET.domain)
    ],
    tcp=[TCPResult(ip=REAL, port=80, failure=None, ms=1)],
    http=HTTPResult(url=TARGET.url, failure=None, ms=1, status=200),
)


async def test_every_path_resolves_and_the_others_answers_are_dialled(isp, dns_server):
    isp.zones["blocked.test"] = Zone(rcode="NXDOMAIN")
    dns_server.zones["blocked.test"] = Zone(addresses=[REAL])
    net = FakeNet({})
    m = await measure([f"isp=127.0.0.1:{isp.port}", f"pub=127.0.0.1:{dns_server.port}"], net)
    assert [(r.path, r.failure, r.answers) for r in m.dns] == [
        ("isp", "dns_nxdomain_error", []),
        ("pub", None, [REAL]),
    ]
    assert [c for c in net.calls if c[0] == "tcp"] == [("tcp", REAL)]  # DNS only, or DNS and IP?
    v = verdict.decide(m, CONTROL)
    assert (v.status, v.method, v.detail) == ("blocked", "dns", "nxdomain")
    paths = verdict.decide_paths(m, CONTROL)
    assert [(p.path, p.status, p.method, p.detail) for p in paths] == [
        ("isp", "blocked", "dns", "nxdomain"),
        ("pub", "ok", None, None),
    ]


async def test_a_public_resolver_censoring_over_dot_and_an_honest_doh(isp, certs):
    async with (
        dns_server_mod.serving("127.0.0.1") as google,
        dns_server_mod.serving("127.0.0.1") as honest,
    ):
        isp.zones["blocked.test"] = Zone(addresses=[REAL])
        google.zones["blocked.test"] = Zone(rcode="REFUSED", ede=[(16, "Censored")])
        honest.zones["blocked.test"] = Zone(addresses=[REAL])
        context = server_context(certs.ca.issue_cert(HOST, "127.0.0.1"), [])
        async with (
            serving_dot(google, context) as dot_port,
            serving_doh(honest, context, "127.0.0.1") as doh,
        ):
            m = await measure(
                [f"isp=127.0.0.1:{isp.port}", f"google=tls://127.0.0.1:{dot_port}#{HOST}",
                 f"doh={doh.url}"],
                FakeNet({}), certs.ca_file,
            )  # fmt: skip
    assert [(r.path, r.transport) for r in m.dns] == [
        ("isp", "udp"),
        ("google", "dot"),
        ("doh", "doh"),
    ]
    paths = verdict.decide_paths(m, CONTROL)
    assert [(p.path, p.transport, p.status, p.method, p.detail, p.blockpage) for p in paths] == [
        ("isp", "udp", "ok", None, None, None),
        ("google", "dot", "blocked", "dns", "refused", "ede_16"),
        ("doh", "doh", "ok", None, None, None),
    ]
    assert verdict.decide(m, CONTROL).status == "ok"  # the record's verdict: the primary path's


async def test_a_broken_doh_path_fails_alone(isp, dns_server, certs):
    isp.zones["blocked.test"] = Zone(addresses=[REAL])
    context = server_context(certs.ca.issue_cert(HOST, "127.0.0.1"), [])
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        doh.mode = "html"
        m = await measure(
            [f"isp=127.0.0.1:{isp.port}", f"doh={doh.url}"], FakeNet({}), certs.ca_file
        )
    assert [(r.path, r.failure) for r in m.dns] == [
        ("isp", None),
        ("doh", "unknown_failure: doh content-type text/html"),
    ]
    assert m.http is not None and m.http.status == 200
    paths = verdict.decide_paths(m, CONTROL)
    assert [(p.path, p.status) for p in paths] == [("isp", "ok"), ("doh", "blocked")]


async def test_an_address_only_another_path_answers_is_dialled_without_a_get(isp, dns_server):
    other = "198.51.100.20"
    isp.zones["blocked.test"] = Zone(addresses=[REAL])
    dns_server.zones["blocked.test"] = Zone(addresses=[other])
    net = FakeNet({})
    m = await measure([f"isp=127.0.0.1:{isp.port}", f"pub=127.0.0.1:{dns_server.port}"], net)
    assert sorted(c[1] for c in net.calls if c[0] == "tcp") == [REAL, other]
    assert [c[1][1] for c in net.calls if c[0] == "http"] == [REAL]  # the GET stays the primary's
    assert m.http is not None and m.http.ip == REAL
    assert [r.path for r in m.dns] == ["isp", "pub"]
