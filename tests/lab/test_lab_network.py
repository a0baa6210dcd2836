"""The lab itself: every planted technique has its raw effect, seen from a probe namespace.

Plain dnspython/asyncio/ssl (tests/lab/rawclient.py), no probe code but the failure vocabulary.
ISP "a" plants everything; ISP "b" only dns_localhost and ip_drop, so it must be honest for
the rest. Timeouts are short on purpose (the lab has no latency unless asked).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.lab import plan, rawclient, wiring
from tests.lab.rawclient import Timeouts
from tests.lab.technique import RESOLVER_ACTIONS, RULE_KINDS, STEPS, Technique
from tests.lab.topology import Lab, default_prefix

WALKED = [t for t in plan.TECHNIQUES if t.name != "lossy_link"]  # random loss: its own test


def resolver_for(lab: Lab, technique: Technique, letter: str = "a") -> str:
    return lab.public_resolver if technique.resolver == "public" else lab.resolver(letter)


def walk(
    lab: Lab,
    ns: str,
    url: str,
    resolver: str,
    timeouts: Timeouts = rawclient.DEFAULT,
    family: int = 4,
) -> rawclient.Observation:
    return lab.run(ns, rawclient.walk, url, resolver, lab.ca_file, timeouts, family)


def test_plan_is_consistent() -> None:
    names = {n.domain for t in plan.TECHNIQUES for n in t.zone}
    for t in plan.TECHNIQUES:
        assert plan.BY_NAME[t.name] is t
        assert all(c.step in (None, *STEPS) for c in t.checks), t.name
        assert all(r.kind in RULE_KINDS for r in t.rules), t.name
        for action in t.isp_dns.values():
            assert action in RESOLVER_ACTIONS or action[0].isdigit() or action == "@blockpage"
        # string rules match substrings: a match must not hit another technique's names
        own = {n.domain for n in t.zone}
        for match in (r.match for r in t.rules if r.match is not None):
            assert {n for n in names if match in n} <= own, (t.name, match)


@pytest.mark.parametrize("technique", WALKED, ids=lambda t: t.name)
def test_planted_technique_has_its_raw_effect(lab: Lab, technique: Technique) -> None:
    for check in technique.checks:
        seen = walk(lab, "probe_a", check.url, resolver_for(lab, technique))
        assert (seen.step, seen.failure) == (check.step, check.failure), (check.url, seen)
        if check.status is not None:
            assert seen.status == check.status, (check.url, seen)


ISP_B = plan.TEST_ISPS[1]
UNPLANTED_ON_B = [t for t in plan.TECHNIQUES if t.isp_side and not ISP_B.plants(t)]


@pytest.mark.parametrize("technique", UNPLANTED_ON_B, ids=lambda t: t.name)
def test_isp_b_is_honest_where_nothing_is_planted(lab: Lab, technique: Technique) -> None:
    assert lab.expected(technique, "b").status == "ok"
    for check in technique.checks:
        seen = walk(lab, "probe_b", check.url, resolver_for(lab, technique, "b"))
        assert (seen.step, seen.status) == (None, 200), (check.url, seen)


def test_isp_b_plants_its_own_selection(lab: Lab) -> None:
    lo = walk(lab, "probe_b", "https://dns-lo.example/", lab.resolver("b"))
    drop = walk(lab, "probe_b", "https://ip-drop.example/", lab.resolver("b"))
    assert (lo.step, lo.addresses) == ("dns", ["127.0.0.1"])
    assert (drop.step, drop.failure) == ("tcp", "generic_timeout_error")


def test_refused_carries_ede_censored(lab: Lab) -> None:
    answer = lab.run("probe_a", rawclient.resolve, lab.resolver("a"), "dns-refused.example")
    assert (answer.rcode, answer.ede) == ("REFUSED", [16])


def test_geo_cdn_answers_differ_between_isp_and_authoritative(lab: Lab) -> None:
    isp = lab.run("probe_a", rawclient.resolve, lab.resolver("a"), "geo.example")
    auth = lab.run("probe_a", rawclient.resolve, lab.auth_dns, "geo.example")
    assert (isp.addresses, auth.addresses) == (["10.200.3.41"], ["10.200.3.40"])


def test_bogon_counter_sees_only_real_attempts(lab: Lab) -> None:
    assert lab.rule_packets("a", "10.200.3.254") == 0  # no rule there: proves the parser's key
    start = lab.rule_packets("a", "10.10.34.35")
    walk(lab, "probe_a", "https://dns-private.example/", lab.resolver("a"))
    assert lab.rule_packets("a", "10.10.34.35") == start  # the walk never connected to it

    async def attempt() -> None:  # on another DROP rule: the bogon's counter stays untouched
        try:
            await asyncio.wait_for(asyncio.open_connection("10.200.3.11", 443), 0.2)
        except TimeoutError:
            pass

    dropped = lab.rule_packets("a", "10.200.3.11")
    lab.run("probe_a2", attempt)
    assert lab.rule_packets("a", "10.200.3.11") > dropped  # a real attempt is counted


def test_blockpage_host_and_its_certificate(lab: Lab) -> None:
    seen = walk(lab, "probe_a", "http://dns-bp.example/", lab.resolver("a"))
    assert seen.addresses == [lab.isp("a").blockpage]
    assert b"BLOCKED by ISP a" in seen.hops[-1].body
    subject = lab.run("probe_a", peer_subject, lab.isp("a").blockpage, "dns-bp.example")
    assert subject == "blockpage.isp-a.test"


async def peer_subject(address: str, sni: str) -> str:
    """Return the CN of the certificate ``address`` presents for ``sni`` (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection(address, 443, ssl=ctx, server_hostname=sni)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    await rawclient.close(writer)
    subject = x509.load_der_x509_certificate(der).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_interceptor_presents_the_digi_certificate_to_probes_only(lab: Lab) -> None:
    assert lab.run("probe_a", peer_subject, "10.200.3.21", "mitm.example") == "core1.netops.test"
    control = walk(lab, "internet", "https://mitm.example/", lab.auth_dns)
    assert control.status == 200  # the collector's vantage gets the real, valid certificate


def test_transparent_proxy_injects_and_forwards(lab: Lab) -> None:
    blocked = walk(lab, "probe_a", "http://proxied.example/", lab.resolver("a"))
    passed = walk(lab, "probe_a", "http://proxy-pass.example/", lab.resolver("a"))
    direct = walk(lab, "probe_a", "http://ok.example/", lab.resolver("a"))
    assert b"BLOCKED by ISP a" in blocked.hops[-1].body
    assert blocked.hops[-1].headers["x-lab-proxy"] == "isp-a"
    assert passed.hops[-1].headers["x-lab-client"] == lab.isp("a").uplink_router  # via proxy
    assert direct.hops[-1].headers["x-lab-client"] == lab.isp("a").probe(1)  # routed, no NAT


def test_451_only_for_probe_networks(lab: Lab) -> None:
    control = walk(lab, "internet", "https://probe451.example/", lab.auth_dns)
    assert control.status == 200


def test_injection_sends_two_replies(lab: Lab) -> None:
    replies = lab.run("probe_a", rawclient.all_replies, lab.public_resolver, "inject.example", 0.8)
    assert replies == [
        (lab.public_resolver, [lab.isp("a").blockpage]),
        (lab.public_resolver, [plan.MISC]),
    ]


def test_dns_drop_also_over_tcp(lab: Lab) -> None:
    async def over_tcp() -> str:
        import dns.asyncquery
        import dns.exception
        import dns.message

        query = dns.message.make_query("dns-drop.example", "A")
        try:
            await dns.asyncquery.tcp(query, lab.resolver("a"), timeout=0.5)
        except dns.exception.Timeout:
            return "timeout"
        return "answered"

    assert lab.run("probe_a", over_tcp) == "timeout"


def test_redirect_chain_and_big_body(lab: Lab) -> None:
    chain = walk(lab, "probe_a", "http://redirect.example/", lab.resolver("a"))
    big = walk(lab, "probe_a", "https://big.example/", lab.resolver("a"))
    assert [h.status for h in chain.hops] == [302, 301, 200]
    assert chain.hops[-1].url == "https://ok.example/"
    assert len(big.hops[-1].body) == 1 << 20


def test_slow_server_outlasts_a_short_read_timeout(lab: Lab) -> None:
    seen = walk(lab, "probe_a", "https://slow.example/", lab.resolver("a"), Timeouts(http=0.5))
    assert (seen.step, seen.failure) == ("http", "generic_timeout_error")


def test_lossy_link_loses_some_packets_but_serves(lab: Lab) -> None:
    async def burst() -> list[bool]:
        async def one() -> bool:
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection("10.200.3.16", 443), 0.5)
            except TimeoutError:
                return False
            await rawclient.close(w)
            return True

        return list(await asyncio.gather(*(one() for _ in range(120))))

    results = lab.run("probe_a", burst)
    assert 0 < results.count(True) < 120  # P(all 120 SYNs pass at 10 % loss) ~ 3e-6
    patient = Timeouts(connect=3.5, tls=3.5, http=5)
    seen = walk(lab, "probe_a", "https://lossy.example/", lab.resolver("a"), patient)
    assert seen.status == 200


def test_ipv6_ok(lab: Lab) -> None:
    seen = walk(lab, "probe_a", "https://ok.example/", lab.resolver("a"), family=6)
    assert (seen.addresses, seen.status) == ([plan.CDN6], 200)
    assert seen.hops[-1].headers["x-lab-client"] == lab.isp("a").probe6(1)


def test_system_resolver_of_a_probe_is_its_isp(lab: Lab) -> None:
    code = "import socket; print(socket.getaddrinfo('dns-lo.example', 443)[0][4][0])"
    done = lab.exec("probe_a2", [sys.executable, "-c", code])
    assert done.stdout.strip() == "127.0.0.1", done.stderr
    code = "import socket; socket.getaddrinfo('dns-nx.example', 443)"
    assert "gaierror" in lab.exec("probe_a", [sys.executable, "-c", code]).stderr


def test_spawned_process_on_the_collector_address(lab: Lab) -> None:
    argv = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        lab.collector_addr,
        str(lab.collector_port),
    ]
    server = lab.spawn(
        "internet", argv, "http-server", ready_tcp=(lab.collector_addr, lab.collector_port)
    )
    try:
        seen = walk(lab, "probe_a", lab.collector_url + "/", lab.resolver("a"))
    finally:
        lab.stop(server)
    assert seen.hops and seen.hops[0].status == 200
    dead = walk(lab, "probe_a", lab.dead_control_url, lab.resolver("a"))
    assert (dead.step, dead.failure) == ("tcp", "connection_refused")


def test_root_namespace_holds_nothing_of_the_lab(lab: Lab) -> None:
    links = {
        line.split(":")[1].strip().split("@")[0]
        for line in wiring.ip("-o", "link").stdout.splitlines()
    }
    addresses = wiring.ip("-o", "addr").stdout
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert not links & {"lan", "wan", "p1", "p2", "to_a", "to_b"}
    assert "10.200." not in addresses and "fd00:200:" not in addresses
    assert "10.200." not in rules
    assert "lan" in lab.exec("router_a", ["ip", "-o", "link"]).stdout  # they exist, elsewhere


def test_three_isps_with_delay_then_teardown(lab: Lab) -> None:
    """A second lab at once (plan.ISP_ROSTER, 30 ms RTT), then nothing of it is left."""
    other = Lab(prefix=default_prefix() + "t", isps=plan.ISP_ROSTER, delay_ms=30).up()
    try:
        # up() warmed ISP a's injector: a forgery while its query sat in the delayer once
        # broke every later flow (bridge netfilter; see wiring.make_namespace)
        seen = walk(other, "probe_a2", "https://ok.example/", other.resolver("a"))
        geo = other.run("probe_c", rawclient.resolve, other.resolver("c"), "geo.example")
        queue = other.exec("router_c", ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout
    finally:
        other.down()
        other.down()  # idempotent
    assert seen.status == 200
    assert geo.failure == "dns_nxdomain_error"  # c's own policy on top of its techniques
    fields = queue.split()
    assert int(fields[0]) == 1 and int(fields[7]) > 5  # queue 1 saw c's packets: delayed
    assert wiring.existing(other.prefix) == []
    assert not list(wiring.ETC_NETNS.glob(f"{other.prefix}-*"))
    assert not other.workdir.exists()
    assert lab.run("probe_a", rawclient.resolve, lab.resolver("a"), "ok.example").addresses == [
        plan.CDN
    ]
