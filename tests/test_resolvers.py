"""probe.resolvers: the forms of a resolver path, their names and texts, the default list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import config, resolvers
from probe.resolvers import ResolverPath, parse_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.8.8.8", ResolverPath("8.8.8.8", "udp", "8.8.8.8", 53)),
        ("isp=192.0.2.1:5353", ResolverPath("isp", "udp", "192.0.2.1", 5353)),
        ("[2001:db8::1]:53", ResolverPath("2001:db8::1", "udp", "2001:db8::1", 53)),
        ("tls://1.1.1.1", ResolverPath("tls://1.1.1.1", "dot", "1.1.1.1", 853)),
        (
            "cf=tls://1.1.1.1:8853#one.one.one.one",
            ResolverPath("cf", "dot", "1.1.1.1", 8853, hostname="one.one.one.one"),
        ),
        (
            "tls://[2606:4700::1111]",
            ResolverPath("tls://[2606:4700::1111]", "dot", "2606:4700::1111", 853),
        ),
        (
            "g=https://8.8.8.8/dns-query",
            ResolverPath("g", "doh", "8.8.8.8", 443, url="https://8.8.8.8/dns-query"),
        ),
        (
            "https://doh.test:8443/q",
            ResolverPath("https://doh.test:8443/q", "doh", "", 8443, url="https://doh.test:8443/q"),
        ),
        ("system", ResolverPath("system", "udp", "", 53)),
        ("home=system", ResolverPath("home", "udp", "", 53)),
    ],
)
def test_forms(text, expected):
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected [NAME=]IP[:PORT]"),
        ("dns.google", "'dns.google' is not an IP address"),
        ("udp://1.1.1.1", "only tls:// and https://"),
        ("tls://1.1.1.1/path", "expected tls://IP[:PORT][#HOSTNAME]"),
        ("tls://1.1.1.1#bad_host!", "is not a host name"),
        ("https://", "expected https://HOST[:PORT]/PATH"),
        ("https://h.test/q?dns=AAAB", "no query string"),
        ("https://h.test:99999/q", "is not a URL"),
        ("n@me=1.1.1.1", "is not a path name"),
        ("1.1.1.1:0", "port 0 is not from 1 to 65535"),
    ],
)
def test_rejections_say_why(text, why):
    with pytest.raises(ValueError, match=None) as e:
        parse_path(text)
    assert why in str(e.value)


def test_texts_are_what_the_record_shows():
    assert parse_path("isp=192.0.2.1:5353").text == "192.0.2.1:5353"
    assert parse_path("tls://1.1.1.1#cf.test").text == "tls://1.1.1.1#cf.test"
    assert parse_path("tls://[::1]:8853").text == "tls://[::1]:8853"
    assert parse_path("https://8.8.8.8/dns-query").text == "https://8.8.8.8/dns-query"


def test_default_list_is_the_system_then_public_resolvers(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    paths = config.DNSConfig().paths(lambda: config.system_resolver(str(resolv)))
    assert [p.name for p in paths] == [
        "system", "google", "google_doh", "cloudflare", "cloudflare_doh", "quad9", "quad9_doh",
    ]  # fmt: skip
    assert (paths[0].address, paths[0].port, paths[0].transport) == ("192.0.2.53", 53, "udp")
    assert {p.transport for p in paths} == {"udp", "doh"}
    assert resolvers.DEFAULT_PATHS[0] == "system"


def test_one_resolver_is_a_list_of_one_and_the_list_wins():
    one = config.DNSConfig(resolver="192.0.2.1:5353")
    assert [(p.name, p.address, p.port) for p in one.paths()] == [
        ("192.0.2.1:5353", "192.0.2.1", 5353)
    ]
    both = config.DNSConfig(resolver="192.0.2.1", resolvers=("a=192.0.2.2", "b=tls://192.0.2.3"))
    assert [p.name for p in both.paths()] == ["a", "b"]


def test_the_list_from_the_environment_is_comma_separated():
    cfg = config.load_config(
        None, environ={"SURBLOCAGE_PROBE_DNS_RESOLVERS": "isp=192.0.2.1, g=https://8.8.8.8/q"}
    )
    assert cfg.dns.resolvers == ("isp=192.0.2.1", "g=https://8.8.8.8/q")


def test_the_whoami_lookup_can_be_turned_off():
    assert config.load_config(None, {"dns.whoami": "off"}).dns.whoami is None
    assert config.load_config(None, {"dns.whoami": "Whoami.Example."}).dns.whoami == (
        "whoami.example"
    )


# what a volunteer may type: the forms' pieces, shuffled with anything
PIECES = st.sampled_from(
    ["tls://", "https://", "system", "=", ":", "#", "/", "[", "]", "?", "1.1.1.1", "::1", "853",
     "dns-query", "a", " ", "%", "\x00", "é"]
)  # fmt: skip


@given(st.lists(PIECES | st.text(max_size=8), max_size=8).map("".join))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_path_or_a_value_error(text):
    try:
        path = resolvers.parse_path(text)
    except ValueError:
        return
    assert path.transport in resolvers.TRANSPORTS
    assert path.name and len(path.name) <= 512
    assert resolvers.parse_path(f"x={path.text}").text == path.text  # its text parses again
