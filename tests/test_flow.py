"""The composer on a fake step map (STYLE.md's seam): address policy, SNI swap, redirects."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from typing import Any

from probe.addresses import is_connectable
from probe.flow import Flow, FlowOptions, Steps
from probe.record import DNSResult, HTTPResult, ProbeInfo, Target, TCPResult, TLSResult
from tests.fake_steps import fake_steps

PROBE = ProbeInfo(software="test")


class FakeNet:
    """Steps answering from tables; every call is logged so tests can assert what was dialled."""

    def __init__(
        self,
        zone: dict[str, list[str]],
        tls_fail: dict[tuple[str, str], str] | None = None,
        pages: dict[str, tuple[int, str | None]] | None = None,
        slow: float = 0.0,
    ) -> None:
        self.zone, self.tls_fail, self.pages, self.slow = zone, tls_fail or {}, pages or {}, slow
        self.calls: list[tuple[str, Any]] = []
        self.swap_delay = 0.0

    async def dns(self, spec: Any) -> DNSResult:
        self.calls.append(("dns", (spec.name, spec.qtype)))
        answers = [a for a in self.zone.get(spec.name, []) if (":" in a) == (spec.qtype == "AAAA")]
        return DNSResult(
            resolver=spec.resolver,
            qtype=spec.qtype,
            ms=1,
            rcode="NOERROR",
            answers=answers,
            name=spec.name,
            failure=None if answers else "dns_no_answer",
        )

    async def tcp(self, spec: Any) -> TCPResult:
        self.calls.append(("tcp", spec.ip))
        return TCPResult(ip=spec.ip, port=spec.port, failure=None, ms=1)

    async def tls(self, spec: Any) -> TLSResult:
        self.calls.append(("tls", (spec.ip, spec.sni, spec.neutral)))
        if spec.neutral:
            await asyncio.sleep(self.swap_delay)
        failure = None if spec.neutral else self.tls_fail.get((spec.ip, spec.sni))
        return TLSResult(
            ip=spec.ip, port=spec.port, sni=spec.sni, failure=failure, ms=1, neutral=spec.neutral
        )

    async def http(self, spec: Any) -> HTTPResult:
        self.calls.append(("http", (spec.url, spec.ip)))
        try:
            await asyncio.sleep(self.slow)
        except asyncio.CancelledError:
            self.calls.append(("http cancelled", spec.url))
            raise
        status, location = self.pages.get(spec.url, (200, None))
        headers = {"location": location} if location else {}
        return HTTPResult(
            url=spec.url, failure=None, ms=1, status=status, headers=headers, ip=spec.ip
        )

    def steps(self) -> Steps:
        return fake_steps(self.dns, self.tcp, self.tls, self.http)


def target(url: str, domain: str) -> Target:
    return Target(service="s", url=url, domain=domain, category="general")


OPTS = FlowOptions(resolver="192.0.2.53")


async def test_every_address_is_dialled_and_bogons_never() -> None:
    net = FakeNet(
        {
            "a.fr": [
                "93.184.216.34",
                "93.184.216.35",
                "127.0.0.1",
                "10.1.2.3",
                "2001:db8::1",
                "2a00:1450::1",
            ]
        }
    )
    m = await Flow(OPTS, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    dialled = [c[1] for c in net.calls if c[0] == "tcp"]
    assert sorted(dialled) == ["2a00:1450::1", "93.184.216.34", "93.184.216.35"]
    assert {t.ip for t in m.tls} == set(dialled)
    assert m.http is not None and m.http.status == 200


async def test_allowed_network_is_dialled_but_loopback_never() -> None:
    opts = FlowOptions(
        resolver="10.0.0.1",
        allow_networks=(ipaddress.ip_network("10.200.0.0/16"), ipaddress.ip_network("127.0.0.0/8")),
    )
    net = FakeNet({"lab.example": ["10.200.3.10", "127.0.0.1"]})
    await Flow(opts, net.steps()).measure(target("http://lab.example/", "lab.example"), PROBE)
    assert [c[1] for c in net.calls if c[0] == "tcp"] == ["10.200.3.10"]


def test_connectable_policy() -> None:
    allow = (ipaddress.ip_network("192.168.0.0/16"),)
    assert is_connectable("8.8.8.8")
    assert not is_connectable("192.168.1.1")
    assert is_connectable("192.168.1.1", allow)
    assert not is_connectable("0.0.0.0", (ipaddress.ip_network("0.0.0.0/0"),))
    assert not is_connectable("::1", (ipaddress.ip_network("::/0"),))
    assert not is_connectable("100.64.0.1")  # shared address space (RFC 6598)
    assert not is_connectable("not-an-ip")


async def test_sni_swap_only_after_a_cut_handshake() -> None:
    net = FakeNet(
        {"a.fr": ["93.184.216.34"], "b.fr": ["93.184.216.35"]},
        tls_fail={
            ("93.184.216.34", "a.fr"): "connection_reset",
            ("93.184.216.35", "b.fr"): "ssl_invalid_hostname",
        },
    )
    flow = Flow(OPTS, net.steps())
    a = await flow.measure(target("https://a.fr/", "a.fr"), PROBE)
    b = await flow.measure(target("https://b.fr/", "b.fr"), PROBE)
    assert [(t.sni, t.neutral) for t in a.tls] == [("a.fr", False), ("www.example.com", True)]
    assert [(t.sni, t.neutral) for t in b.tls] == [("b.fr", False)]
    assert a.http is None and b.http is None  # nothing usable: no request sent


async def test_redirect_host_goes_through_the_tested_resolver() -> None:
    net = FakeNet(
        {"a.fr": ["93.184.216.34"], "cdn.b.fr": ["93.184.216.40"]},
        pages={"https://a.fr/": (301, "https://cdn.b.fr/home")},
    )
    m = await Flow(OPTS, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert ("dns", ("cdn.b.fr", "A")) in net.calls
    assert ("http", ("https://cdn.b.fr/home", "93.184.216.40")) in net.calls
    assert m.http is not None and m.http.url == "https://cdn.b.fr/home"
    assert [r.location for r in m.http.redirects] == ["https://cdn.b.fr/home"]
    assert {r.name for r in m.dns} == {"a.fr", "cdn.b.fr"}


async def test_redirect_loop_stops_after_ten_hops() -> None:
    net = FakeNet({"a.fr": ["93.184.216.34"]}, pages={"https://a.fr/": (302, "/")})
    m = await Flow(OPTS, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert m.http is not None
    assert m.http.failure == "unknown_failure: stopped after too many redirects"
    # ten redirects followed (docs/spec.md: at most 10): the first request and ten more;
    # the eleventh redirect is the answer, not followed
    assert len(m.http.redirects) == 10
    assert len([c for c in net.calls if c[0] == "http"]) == 11
    assert (m.http.url, m.http.status) == ("https://a.fr/", 302)


async def test_ten_redirects_then_a_page_is_followed_to_the_page() -> None:
    pages = {f"http://a.fr/{i}": (302, f"/{i + 1}") for i in range(10)}
    net = FakeNet({"a.fr": ["93.184.216.34"]}, pages=pages)
    m = await Flow(OPTS, net.steps()).measure(target("http://a.fr/0", "a.fr"), PROBE)
    assert m.http is not None
    assert (m.http.url, m.http.status, m.http.failure) == ("http://a.fr/10", 200, None)
    assert len(m.http.redirects) == 10


async def test_addresses_capped_per_family_in_answer_order_and_counted() -> None:
    v4 = [f"93.184.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    v6 = [f"2a00:1450::{i + 1:x}" for i in range(20)]
    extra = ["10.0.0.1", *(f"198.41.0.{i}" for i in range(1, 11)), "93.184.0.1"]
    net = FakeNet({"a.fr": [*v4, *v6]})
    opts = FlowOptions(resolver="192.0.2.53", addresses_per_family=8)
    flow = Flow(opts, net.steps())
    m = await flow.measure(target("http://a.fr/", "a.fr"), PROBE, extra_addresses=extra)
    dialled = [c[1] for c in net.calls if c[0] == "tcp"]
    # the resolver's first 8 of each family, then the caller's first 8 new connectable ones
    assert dialled == v4[:8] + v6[:8] + [f"198.41.0.{i}" for i in range(1, 9)]
    assert [t.ip for t in m.tcp] == dialled
    assert len(m.dns[0].answers) == 1000  # the answers are recorded whole
    assert flow.addresses_ignored == (1000 - 8) + (20 - 8) + (10 - 8)


async def test_no_cap_by_default_every_address_is_dialled() -> None:
    v4 = [f"93.184.0.{i}" for i in range(1, 31)]
    net = FakeNet({"a.fr": v4})
    flow = Flow(OPTS, net.steps())
    await flow.measure(target("http://a.fr/", "a.fr"), PROBE)
    assert [c[1] for c in net.calls if c[0] == "tcp"] == v4
    assert flow.addresses_ignored == 0


async def test_a_redirect_to_a_port_not_allowed_is_not_followed() -> None:
    net = FakeNet(
        {"a.fr": ["93.184.216.34"], "b.fr": ["93.184.216.40"]},
        pages={
            "http://a.fr:8080/": (302, "http://a.fr/"),
            "http://a.fr/": (302, "http://b.fr:22/"),
        },
    )
    opts = FlowOptions(resolver="192.0.2.53", redirect_ports=(80, 443))
    m = await Flow(opts, net.steps()).measure(target("http://a.fr:8080/", "a.fr"), PROBE)
    assert m.http is not None
    assert m.http.failure == "unknown_failure: redirect to a port not measured"
    assert (m.http.url, m.http.status) == ("http://a.fr/", 302)
    assert [c[1][0] for c in net.calls if c[0] == "http"] == ["http://a.fr:8080/", "http://a.fr/"]
    assert ("dns", ("b.fr", "A")) not in net.calls


async def test_target_time_is_bounded_and_partial_results_kept() -> None:
    opts = FlowOptions(resolver="192.0.2.53", target_timeout_seconds=0.2)
    net = FakeNet({"a.fr": ["93.184.216.34"]}, slow=5.0)
    m = await Flow(opts, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert m.http is not None and m.http.failure == "generic_timeout_error"
    assert [t.ip for t in m.tcp] == ["93.184.216.34"]  # what was measured before is kept
    assert [t.sni for t in m.tls] == ["a.fr"]
    # the slow GET was cut when the time ran out, not waited for
    assert ("http cancelled", "https://a.fr/") in net.calls


async def test_dns_only_target_is_never_dialled() -> None:
    net = FakeNet({"rt.com": ["93.184.216.34"]})
    m = await Flow(OPTS, net.steps()).measure(
        target("https://rt.com/", "rt.com"), PROBE, dns_only=True
    )
    assert [c[0] for c in net.calls] == ["dns", "dns"]
    assert m.tcp == [] and m.http is None


async def test_redirect_hop_that_cannot_be_reached_keeps_the_chain() -> None:
    net = FakeNet(
        {"a.fr": ["93.184.216.34"], "b.fr": ["93.184.216.40"]},
        tls_fail={("93.184.216.40", "b.fr"): "connection_reset"},
        pages={"https://a.fr/": (301, "https://b.fr/")},
    )
    m = await Flow(OPTS, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert m.http is not None
    assert (m.http.url, m.http.failure) == ("https://b.fr/", "connection_reset")
    assert [r.location for r in m.http.redirects] == ["https://b.fr/"]


async def test_a_handshake_cut_is_kept_when_the_time_runs_out_during_its_swap() -> None:
    opts = FlowOptions(resolver="192.0.2.53", target_timeout_seconds=0.3)
    net = FakeNet({"a.fr": ["93.184.216.34"]}, tls_fail={("93.184.216.34", "a.fr"): "eof_error"})
    net.swap_delay = 5.0
    m = await Flow(opts, net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert [(t.sni, t.failure) for t in m.tls] == [("a.fr", "eof_error")]
    assert m.http is not None and m.http.failure == "generic_timeout_error"


class PathsNet(FakeNet):
    """FakeNet whose DNS results carry the path asked; the path ``silent`` never answers."""

    silent: str | None = None

    async def dns(self, spec: Any) -> DNSResult:
        if spec.path == self.silent:
            await asyncio.sleep(3600)
        found = await super().dns(spec)
        return dataclasses.replace(found, path=spec.path)


def two_paths(timeout: float) -> FlowOptions:
    from probe.resolvers import parse_path

    paths = (parse_path("isp=192.0.2.53"), parse_path("pub=198.51.100.53"))
    return FlowOptions(resolver="192.0.2.53", paths=paths, target_timeout_seconds=timeout)


async def test_lookups_done_when_the_time_runs_out_are_kept() -> None:
    net = PathsNet({"a.fr": ["93.184.216.34"]}, slow=5.0)
    m = await Flow(two_paths(0.3), net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert sorted((r.path, r.qtype) for r in m.dns) == [
        ("isp", "A"), ("isp", "AAAA"), ("pub", "A"), ("pub", "AAAA"),
    ]  # fmt: skip
    assert m.http is not None and m.http.failure == "generic_timeout_error"


async def test_a_silent_path_is_cancelled_with_the_target_and_the_primary_kept() -> None:
    net = PathsNet({"a.fr": ["93.184.216.34"]})
    net.silent = "pub"
    m = await Flow(two_paths(0.3), net.steps()).measure(target("https://a.fr/", "a.fr"), PROBE)
    assert [(r.path, r.qtype) for r in m.dns] == [("isp", "A"), ("isp", "AAAA")]
    assert [c[0] for c in net.calls].count("http") == 1  # the primary's GET was not held back
    assert m.http is not None and m.http.status == 200  # nor lost with the silent path
