"""Every technique planted in the lab, with what a probe should see and conclude (docs/spec.md).

This table is data, and the one place that declares a technique: the topology plants it, the
lab's self-test proves its raw effect, and the CLI scenario tests read ``expect`` and ``checks``.
A technique owns its domain names (no name, SNI or Host string of one technique is a substring
of another's name: the middlebox matches substrings). Long because it is a table.
"""

from __future__ import annotations

from tests.lab.technique import BLOCKPAGE, Check, Expect, IspSpec, Listener, Name, Rule, Site
from tests.lab.technique import Technique as T

CDN = "10.200.3.10"  # the shared CDN address: many names, one certificate
CDN6 = "fd00:200:0:3::10"
MISC = "10.200.3.13"  # the real address of the names the ISP resolver lies about
BP_IP = "lab_isp_blockpage_ip"  # fingerprint names in tests/lab/fingerprints.yaml
BP_BODY = "lab_isp_blockpage_body"
BENCH_SUFFIX = "bench.example"  # *.bench.example resolves to CDN and is in the lab certificate
OK_NAME = Name("ok.example", (CDN,), (CDN6,))


def on(addr: str, *domains: str, slow: float = 0.0) -> tuple[Name, ...]:
    """Return zone entries putting every domain on one address."""
    return tuple(Name(d, (addr,), slow_seconds=slow) for d in domains)


def blocked(method: str, detail: str | None, why: str, blockpage: str | None = None) -> Expect:
    return Expect("blocked", method, detail, blockpage, why)


def ok(why: str) -> Expect:
    return Expect("ok", why=why)


def down(why: str) -> Expect:
    return Expect("down", why=why)


def fails(url: str, step: str, failure: str | None) -> tuple[Check, ...]:
    return (Check(url, step, failure),)


def gets(url: str, status: int = 200) -> tuple[Check, ...]:
    return (Check(url, status=status),)


def dns_lie(name: str, action: str, domain: str, failure: str | None, expect: Expect) -> T:
    """Return a technique where only the ISP resolver lies about ``domain``."""
    checks = fails(f"https://{domain}/", "dns", failure)
    return T(name, checks, expect, zone=on(MISC, domain), isp_dns={domain: action})


def bench_urls(count: int) -> list[str]:
    """Return ``count`` distinct honest HTTPS URLs (for benchmarks: 200 targets)."""
    return [f"https://t{i:04d}.{BENCH_SUFFIX}/" for i in range(count)]


TECHNIQUES: tuple[T, ...] = (
    T("ok_http", gets("http://ok.example/"), ok("honest path"), zone=(OK_NAME,)),
    T("ok_https", gets("https://ok.example/"), ok("honest path, IPv4+6"), zone=(OK_NAME,)),
    dns_lie(
        "dns_nxdomain", "nxdomain", "dns-nx.example", "dns_nxdomain_error",
        blocked("dns", "nxdomain", "ISP NXDOMAIN, control resolves (SFR, Bouygues)"),
    ),
    dns_lie(
        "dns_localhost", "127.0.0.1", "dns-lo.example", None,
        blocked("dns", "bogon", "127.0.0.1 (Orange, Free): loopback is always an anomaly"),
    ),
    T(
        "dns_bogon_private", fails("https://dns-private.example/", "dns", None),
        blocked("dns", "bogon", "private address outside --allow-network: never connected"),
        zone=on(MISC, "dns-private.example"), isp_dns={"dns-private.example": "10.10.34.35"},
        rules=(Rule("drop", "10.10.34.35", why="counts packets to the bogon: must stay 0"),),
    ),
    dns_lie(
        "dns_empty", "empty", "dns-empty.example", "dns_no_answer",
        blocked("dns", "no_answer", "NOERROR with no address (older SFR)"),
    ),
    dns_lie(
        "dns_refused_ede", "refused_ede", "dns-refused.example", "dns_refused_error",
        blocked("dns", "refused", "REFUSED + EDE 16 Censored (Google's court-order answer)"),
    ),
    dns_lie(
        "dns_servfail", "servfail", "dns-servfail.example", "dns_server_failure",
        blocked("dns", "servfail", "SERVFAIL for this name only; the control resolves"),
    ),
    dns_lie(
        "dns_drop", "drop", "dns-drop.example", "generic_timeout_error",
        blocked("dns", "timeout", "the resolver silently drops the query (UDP and TCP)"),
    ),
    T(
        "dns_blockpage_ip",
        (
            Check("http://dns-bp.example/", status=451),
            Check("https://dns-bp.example/", "tls", "ssl_invalid_hostname"),
        ),
        blocked("dns", "blockpage_ip", "answer is the ISP's block-page host", BP_IP),
        zone=on(MISC, "dns-bp.example"), isp_dns={"dns-bp.example": BLOCKPAGE},
        notes="the block page answers 451 'BLOCKED by ISP', with a cert for blockpage.isp-X.test",
    ),
    T(
        "geo_cdn", gets("https://geo.example/"),
        ok("ISP and control get two addresses of one CDN; both serve the name's certificate"),
        zone=on("10.200.3.40", "geo.example"), isp_dns={"geo.example": "10.200.3.41"},
        listeners=(Listener("10.200.3.41"),),
    ),
    T(
        "ip_drop", fails("https://ip-drop.example/", "tcp", "generic_timeout_error"),
        blocked("tcp_ip", "timeout", "the middlebox drops every packet to the address"),
        zone=on("10.200.3.11", "ip-drop.example"), rules=(Rule("drop", "10.200.3.11"),),
    ),
    T(
        "ip_reset", fails("https://ip-rst.example/", "tcp", "connection_refused"),
        blocked("tcp_ip", "refused", "an RST answering the SYN shows as connection_refused"),
        zone=on("10.200.3.12", "ip-rst.example"), rules=(Rule("reset", "10.200.3.12"),),
    ),
    T(
        "sni_reset", fails("https://sni-rst.example/", "tls", "connection_reset"),
        blocked("tls", "reset_sni", "RST on the ClientHello; a neutral SNI completes there"),
        zone=on(CDN, "sni-rst.example"), rules=(Rule("sni_reset", match="sni-rst.example"),),
    ),
    T(
        "sni_drop", fails("https://sni-drop.example/", "tls", "generic_timeout_error"),
        blocked("tls", "timeout_sni", "ClientHello dropped; a neutral SNI completes there"),
        zone=on(CDN, "sni-drop.example"), rules=(Rule("sni_drop", match="sni-drop.example"),),
    ),
    T(
        "host_reset", fails("http://host-rst.example/", "http", "connection_reset"),
        blocked("http_failure", "reset", "RST on the request with 'Host: host-rst.example'"),
        zone=on(CDN, "host-rst.example"), rules=(Rule("host_reset", match="host-rst.example"),),
    ),
    T(
        "http_proxy_blockpage", gets("http://proxied.example/"),
        blocked("http_blockpage", None, "a transparent proxy answers its own page, 200", BP_BODY),
        zone=on("10.200.3.20", "proxied.example"), proxy_block=("proxied.example",),
        rules=(Rule("proxy", "10.200.3.20", why="Cleanfeed-style: suspect addresses only"),),
    ),
    T(
        "http_proxy_pass", gets("http://proxy-pass.example/"),
        ok("the transparent proxy forwards Host names it does not block"),
        zone=on("10.200.3.20", "proxy-pass.example"), rules=(Rule("proxy", "10.200.3.20"),),
        notes="the origin sees the router's uplink address as the client (X-Lab-Client)",
    ),
    T(
        "http_451_probe_only", gets("https://probe451.example/", 451),
        blocked("http_diff", None, "451 to probe LANs, 200 to the control: server-side, shown"),
        zone=on(CDN, "probe451.example"),
        sites=(Site("probe451.example", probe_status=451, title="Unavailable For Legal Reasons"),),
    ),
    T(
        "tls_mitm", fails("https://mitm.example/", "tls", "ssl_unknown_authority"),
        blocked("tls", "mitm", "DNAT to a self-signed CN=core1.netops.test interceptor (Digi)"),
        zone=on("10.200.3.21", "mitm.example"), rules=(Rule("intercept", "10.200.3.21"),),
    ),
    T(
        "shared_blocked_address",
        tuple(
            Check(f"https://{d}/", "tcp", "generic_timeout_error")
            for d in ("pirate.example", "legal-one.example", "legal-two.example")
        ),
        blocked("tcp_ip", "timeout", "legal names share the dropped address: collateral"),
        zone=on("10.200.3.15", "pirate.example", "legal-one.example", "legal-two.example"),
        rules=(Rule("drop", "10.200.3.15", why="the order targets pirate.example's address"),),
    ),
    T(
        "redirect_to_blocked", fails("http://redir-blocked.example/", "tls", "connection_reset"),
        blocked("tls", "reset_sni", "301 to a name whose ClientHello is reset"),
        zone=on(CDN, "redir-blocked.example", "redir-target.example"),
        sites=(Site("redir-blocked.example", status=301, location="https://redir-target.example/"),),
        rules=(Rule("sni_reset", match="redir-target.example"),),
    ),
    T(
        "site_down", fails("https://down.example/", "tcp", "connection_refused"),
        down("the name resolves but nothing listens, for the control too"),
        zone=on("10.200.3.60", "down.example"), listeners=(Listener("10.200.3.60", "none"),),
    ),
    T(
        "name_gone", fails("https://gone.example/", "dns", "dns_nxdomain_error"),
        down("the authoritative itself says NXDOMAIN: the control fails too"),
    ),
    T(
        "slow_server", gets("https://slow.example/"),
        ok("answers after 1.5 s, within the probe's timeouts"),
        zone=on(CDN, "slow.example"), sites=(Site("slow.example", delay_seconds=1.5),),
    ),
    T(
        "lossy_link", gets("https://lossy.example/"),
        ok("10 % loss towards the address: TCP retransmits, nothing is blocked"),
        zone=on("10.200.3.16", "lossy.example"),
        rules=(Rule("loss", "10.200.3.16", probability=0.1),),
    ),
    T(
        "dns_injection", fails("https://inject.example/", "tls", "ssl_invalid_hostname"),
        blocked("dns", "blockpage_ip", "on-path forgery wins; the real answer comes 2nd", BP_IP),
        zone=on(MISC, "inject.example", slow=0.3), inject={"inject.example": BLOCKPAGE},
        resolver="public", notes="measure with --resolver PUBLIC_RESOLVER (10.200.3.8)",
    ),
    T(
        "control_unreachable", gets("https://ok.example/"),
        Expect("inconclusive", why="no control answers, and nothing decides alone"),
        zone=(OK_NAME,), control="dead",
    ),
    T(
        "tls_wrong_name", fails("https://wrong-name.example/", "tls", "ssl_invalid_hostname"),
        down("the server's certificate names another host, for the control too"),
        zone=on("10.200.3.70", "wrong-name.example"),
        listeners=(Listener("10.200.3.70", "wrong_name"),),
    ),
    T(
        "tls_unknown_ca", fails("https://unknown-ca.example/", "tls", "ssl_unknown_authority"),
        down("a CA nobody trusts, for the control too"),
        zone=on("10.200.3.71", "unknown-ca.example"),
        listeners=(Listener("10.200.3.71", "other_ca"),),
    ),
    T(
        "redirect_chain", gets("http://redirect.example/"),
        ok("302 then 301 across names and schemes, ending on https://ok.example/"),
        zone=(*on(CDN, "redirect.example"), OK_NAME),
        sites=(
            Site("redirect.example", status=302, location="http://redirect.example/step2"),
            Site("redirect.example", "/step2", status=301, location="https://ok.example/"),
        ),
    ),
    T(
        "big_body", gets("https://big.example/"),
        ok("a 1 MiB body: the probe reads 512 KiB and marks body_truncated"),
        zone=on(CDN, "big.example"), sites=(Site("big.example", body_bytes=1 << 20),),
    ),
)  # fmt: skip

BY_NAME = {t.name: t for t in TECHNIQUES}

# The shared lab fixture (tests/lab/conftest.py): "b" plants a few, so the rest is honest there.
TEST_ISPS = (IspSpec("a", probes=2), IspSpec("b", techniques=("dns_localhost", "ip_drop")))

# For flags and collateral across networks: three ISPs with different habits (a plants everything).
ISP_ROSTER = (
    IspSpec("a", probes=2),
    IspSpec("b", techniques=("dns_localhost", "ip_drop", "shared_blocked_address")),
    IspSpec("c", techniques=("dns_nxdomain", "sni_reset"), isp_dns={"geo.example": "nxdomain"}),
)
