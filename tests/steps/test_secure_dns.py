"""probe.steps.dns over DoT and DoH, against real TLS and HTTPS servers on loopback."""

from __future__ import annotations

import pytest

from probe.record import EDE
from probe.steps import dns
from tests.steps.conftest import HOST, server_context
from tests.support.dns_server import Zone
from tests.support.secure_dns_server import serving_doh, serving_dot


@pytest.fixture
def context(certs):
    leaf = certs.ca.issue_cert(HOST, "127.0.0.1")
    return server_context(leaf, [])


def dot_spec(port: int, name: str, ca_file: str | None, hostname: str | None = HOST, **kw):
    return dns.DNSSpec(
        name=name, qtype="A", resolver="127.0.0.1", port=port, transport="dot",
        hostname=hostname, ca_file=ca_file, path="dot", timeout_seconds=2.0, **kw,
    )  # fmt: skip


def doh_spec(url: str, name: str, ca_file: str | None, qtype: str = "A"):
    return dns.DNSSpec(
        name=name, qtype=qtype, resolver="127.0.0.1", transport="doh", url=url,
        ca_file=ca_file, path="doh", timeout_seconds=2.0,
    )  # fmt: skip


async def test_dot_answers_with_the_path_and_transport(dns_server, context, certs):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.7"])
    async with serving_dot(dns_server, context) as port:
        r = await dns.measure(dot_spec(port, "ok.test", certs.ca_file))
    assert (r.failure, r.answers, r.transport, r.path) == (None, ["192.0.2.7"], "dot", "dot")
    assert r.resolver == f"tls://127.0.0.1:{port}"
    assert dns_server.queries[0][0] == "tcp"


async def test_dot_refused_with_censored_ede(dns_server, context, certs):
    dns_server.zones["blocked.test"] = Zone(rcode="REFUSED", ede=[(16, "Censored")])
    async with serving_dot(dns_server, context) as port:
        r = await dns.measure(dot_spec(port, "blocked.test", certs.ca_file))
    assert (r.rcode, r.failure, r.ede) == ("REFUSED", "dns_refused_error", [EDE(16, "Censored")])


async def test_dot_with_a_wrong_hostname_is_a_certificate_failure(dns_server, context, certs):
    async with serving_dot(dns_server, context) as port:
        r = await dns.measure(dot_spec(port, "ok.test", certs.ca_file, hostname="other.test"))
    assert r.failure == "ssl_invalid_hostname"
    assert r.answers == []


async def test_dot_without_hostname_does_not_check_the_certificate(dns_server, context):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.7"])
    async with serving_dot(dns_server, context) as port:
        r = await dns.measure(dot_spec(port, "ok.test", None, hostname=None))
    assert (r.failure, r.answers) == (None, ["192.0.2.7"])


async def test_doh_answers(dns_server, context, certs):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.8", "2001:db8::8"])
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        a = await dns.measure(doh_spec(doh.url, "ok.test", certs.ca_file))
        aaaa = await dns.measure(doh_spec(doh.url, "ok.test", certs.ca_file, "AAAA"))
    assert (a.failure, a.answers, a.transport, a.path) == (None, ["192.0.2.8"], "doh", "doh")
    assert aaaa.answers == ["2001:db8::8"]
    assert a.resolver == doh.url


async def test_doh_nxdomain(dns_server, context, certs):
    dns_server.zones["gone.test"] = Zone(rcode="NXDOMAIN")
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        r = await dns.measure(doh_spec(doh.url, "gone.test", certs.ca_file))
    assert (r.rcode, r.failure) == ("NXDOMAIN", "dns_nxdomain_error")


@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("html", "unknown_failure: doh content-type text/html"),
        ("type", "unknown_failure: doh content-type application/octet-stream"),
        ("status", "unknown_failure: doh status 403"),
        ("oversized", "unknown_failure: doh message oversized"),
    ],
)
async def test_a_misbehaving_doh_endpoint_is_a_failure_string(
    dns_server, context, certs, mode, failure
):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.8"])
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        doh.mode = mode
        r = await dns.measure(doh_spec(doh.url, "ok.test", certs.ca_file))
    assert (r.failure, r.answers, r.transport) == (failure, [], "doh")


async def test_a_doh_body_cut_short_is_a_failure_not_a_crash(dns_server, context, certs):
    dns_server.zones["ok.test"] = Zone(addresses=["192.0.2.8"])
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        doh.mode = "cut"
        r = await dns.measure(doh_spec(doh.url, "ok.test", certs.ca_file))
    assert r.failure is not None and r.answers == []


async def test_doh_with_an_unknown_authority(dns_server, context):
    async with serving_doh(dns_server, context, "127.0.0.1") as doh:
        r = await dns.measure(doh_spec(doh.url, "ok.test", None))
    assert r.failure == "ssl_unknown_authority"


async def test_doh_nobody_listening_is_refused(closed_port):
    r = await dns.measure(doh_spec(f"https://127.0.0.1:{closed_port}/dns-query", "x.test", None))
    assert r.failure == "connection_refused"
