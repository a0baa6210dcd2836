"""The one address policy (probe/addresses.py): one row per form of address, with its answer.

Each row names the form it stands for; the public rows keep the policy from refusing
everything (a policy that answered False to all would pass the private rows alone).
"""

from __future__ import annotations

import ipaddress

import pytest

from probe.addresses import always_anomalous, is_connectable, is_public

# (address, public?, the form it stands for)
ROWS = [
    # IPv4
    ("8.8.8.8", True, "public IPv4"),
    ("93.184.216.34", True, "public IPv4"),
    ("10.1.2.3", False, "private 10/8 (RFC 1918)"),
    ("172.16.0.1", False, "private 172.16/12"),
    ("192.168.1.1", False, "private 192.168/16"),
    ("127.0.0.1", False, "loopback"),
    ("127.255.0.9", False, "loopback, anywhere in 127/8"),
    ("169.254.1.1", False, "link-local"),
    ("100.64.0.1", False, "CGNAT shared space 100.64/10 (RFC 6598)"),
    ("100.127.255.254", False, "CGNAT, last of 100.64/10"),
    ("100.128.0.1", True, "just past 100.64/10"),
    ("224.0.0.1", False, "multicast"),
    ("239.255.255.250", False, "multicast (SSDP)"),
    ("240.0.0.1", False, "reserved 240/4"),
    ("255.255.255.255", False, "limited broadcast"),
    ("0.0.0.0", False, "unspecified"),
    ("0.1.2.3", False, "'this network' 0/8"),
    ("192.0.2.1", False, "documentation TEST-NET-1"),
    ("198.51.100.1", False, "documentation TEST-NET-2"),
    ("203.0.113.1", False, "documentation TEST-NET-3"),
    ("198.18.0.1", False, "benchmarking 198.18/15"),
    ("198.19.255.1", False, "benchmarking, second half"),
    ("192.0.0.8", False, "IETF protocol assignments 192.0.0/24"),
    # IPv6 without an embedded IPv4
    ("2a00:1450:4007:80e::200e", True, "public IPv6"),
    ("::1", False, "IPv6 loopback"),
    ("::", False, "IPv6 unspecified"),
    ("fe80::1", False, "IPv6 link-local"),
    ("fd00::1", False, "unique local fc00::/7"),
    ("fec0::1", False, "site-local (deprecated)"),
    ("ff02::1", False, "IPv6 multicast"),
    ("2001:db8::1", False, "IPv6 documentation 2001:db8::/32"),
    ("3fff::1", False, "IPv6 documentation 3fff::/20 (RFC 9637)"),
    ("2001:2::1", False, "IPv6 benchmarking 2001:2::/48"),
    ("100::1", False, "discard-only 100::/64"),
    ("4000::1", False, "outside global unicast 2000::/3"),
    # IPv4-mapped ::ffff:0:0/96: the socket dials the IPv4 itself
    ("::ffff:127.0.0.1", False, "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", False, "IPv4-mapped private"),
    ("::ffff:8.8.8.8", False, "IPv4-mapped public: not an address on the wire"),
    # IPv4-compatible ::/96 (deprecated, RFC 4291 §2.5.5.1)
    ("::127.0.0.1", False, "IPv4-compatible loopback"),
    ("::10.0.0.1", False, "IPv4-compatible private"),
    ("::8.8.8.8", False, "IPv4-compatible public: deprecated, never routed"),
    # IPv4-translated ::ffff:0:0:0/96 (SIIT, RFC 2765)
    ("::ffff:0:7f00:1", False, "IPv4-translated loopback"),
    ("::ffff:0:a00:1", False, "IPv4-translated private"),
    ("::ffff:0:808:808", False, "IPv4-translated public: inside a translator only"),
    # NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): DNS64 answers on IPv6-only lines
    ("64:ff9b::7f00:1", False, "NAT64 of loopback"),
    ("64:ff9b::a00:1", False, "NAT64 of private"),
    ("64:ff9b::c0a8:101", False, "NAT64 of private 192.168/16"),
    ("64:ff9b::808:808", True, "NAT64 of a public IPv4 (a DNS64 answer)"),
    # NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215): never public
    ("64:ff9b:1::7f00:1", False, "local-use NAT64 of loopback"),
    ("64:ff9b:1::808:808", False, "local-use NAT64 of a public IPv4"),
    # 6to4 2002::/16 (RFC 3056): the IPv4 in bits 16-47
    ("2002:7f00:1::1", False, "6to4 of loopback"),
    ("2002:a00:1::1", False, "6to4 of private"),
    ("2002:c000:201::1", False, "6to4 of documentation"),
    ("2002:808:808::1", True, "6to4 of a public IPv4"),
    # Teredo 2001::/32 (RFC 4380): server in bits 32-63, client = inverse of the last 32 bits
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False, "Teredo, client 127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False, "Teredo, client 10.0.0.1"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", False, "Teredo, server 10.0.0.1, client public"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True, "Teredo, server and client public"),
    # not addresses at all
    ("not-an-ip", False, "a name"),
    ("", False, "empty"),
    ("127.0.0.1.", False, "malformed"),
]


@pytest.mark.parametrize(("address", "public", "form"), ROWS, ids=[r[2] for r in ROWS])
def test_public(address: str, public: bool, form: str) -> None:
    assert is_public(address) is public, form


def test_teredo_rows_embed_what_they_say() -> None:
    """The Teredo rows are built right: the client is the bitwise inverse of the last 32 bits."""
    a = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe")
    assert a.teredo == (ipaddress.IPv4Address("65.54.227.120"), ipaddress.IPv4Address("127.0.0.1"))
    b = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:f7f7:f7f7")
    assert b.teredo == (ipaddress.IPv4Address("65.54.227.120"), ipaddress.IPv4Address("8.8.8.8"))


# loopback and unspecified, in any form, are never dialled, whatever network is allowed
ANOMALOUS = [
    "127.0.0.1", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1", "::127.0.0.1", "::ffff:0:7f00:1",
    "64:ff9b::7f00:1", "64:ff9b:1::7f00:1", "2002:7f00:1::1", "::ffff:0.0.0.0", "not-an-ip",
]  # fmt: skip


@pytest.mark.parametrize("address", ANOMALOUS)
def test_loopback_in_every_form_is_always_anomalous(address: str) -> None:
    assert always_anomalous(address)
    everything = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert not is_connectable(address, everything)


@pytest.mark.parametrize("address", ["8.8.8.8", "10.0.0.1", "fd00::1", "64:ff9b::808:808"])
def test_other_addresses_are_not_anomalous(address: str) -> None:
    assert not always_anomalous(address)


def test_allowed_networks_open_non_public_addresses_only_of_their_family() -> None:
    lab = (ipaddress.ip_network("10.200.0.0/16"), ipaddress.ip_network("fd00:200::/48"))
    assert is_connectable("10.200.3.10", lab)
    assert is_connectable("fd00:200:0:3::10", lab)
    assert not is_connectable("10.201.0.1", lab)
    assert not is_connectable("::ffff:10.200.3.10", lab)  # the mapped form is not the network
    assert not is_connectable("64:ff9b::ac8:30a", lab)  # nor is its NAT64 form
    assert is_connectable("64:ff9b::808:808")
    assert not is_connectable("64:ff9b::7f00:1")
