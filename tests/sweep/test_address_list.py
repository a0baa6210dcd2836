"""The published address list parsed into bounded types: bad items skipped and counted."""

from __future__ import annotations

from typing import Any

import pytest

from probe.address_list import Address, MalformedList, parse_list
from probe.config import parse_allow_networks

GOOD = {"ip": "8.8.8.8", "port": 443, "sni": "dns.google", "reasons": ["shared"], "domains": 3}


def _doc(*items: Any) -> dict[str, Any]:
    return {"addresses": list(items), "generated_at": "2026-12-06T04:00:00Z"}


def test_a_good_list_in_order() -> None:
    second = {"ip": "2606:4700:0:0::1111", "port": 8443, "sni": "One.One.One.One."}
    parsed = parse_list(_doc(GOOD, second), 10)
    assert parsed.addresses == (
        Address("8.8.8.8", 443, "dns.google"),
        Address("2606:4700::1111", 8443, "one.one.one.one"),
    )
    assert (parsed.malformed, parsed.not_public, parsed.beyond_cap) == (0, 0, 0)


@pytest.mark.parametrize(
    "bad",
    [
        "8.8.8.8",
        {"ip": "8.8.8.999", "port": 443, "sni": "a.example"},
        {"ip": "x" * 100, "port": 443, "sni": "a.example"},
        {"ip": 134744072, "port": 443, "sni": "a.example"},
        {"ip": "8.8.8.8", "port": 0, "sni": "a.example"},
        {"ip": "8.8.8.8", "port": 65536, "sni": "a.example"},
        {"ip": "8.8.8.8", "port": True, "sni": "a.example"},
        {"ip": "8.8.8.8", "port": "443", "sni": "a.example"},
        {"ip": "8.8.8.8", "port": 443, "sni": "1.2.3.4"},
        {"ip": "8.8.8.8", "port": 443, "sni": "bad name.example"},
        {"ip": "8.8.8.8", "port": 443, "sni": "café.example"},
        {"ip": "8.8.8.8", "port": 443, "sni": "a" * 64 + ".example"},
        {"ip": "8.8.8.8", "port": 443, "sni": "localhost"},
        {"ip": "8.8.8.8", "port": 443, "sni": None},
        {"ip": "8.8.8.8", "port": 443},
    ],
)
def test_a_bad_item_is_skipped_and_counted(bad: Any) -> None:
    parsed = parse_list(_doc(bad, GOOD), 10)
    assert parsed.addresses == (Address("8.8.8.8", 443, "dns.google"),)
    assert parsed.malformed == 1


def test_addresses_that_are_not_public_are_left_out_unless_allowed() -> None:
    private = {"ip": "10.1.2.3", "port": 443, "sni": "intranet.example"}
    loopback = {"ip": "127.0.0.1", "port": 443, "sni": "self.example"}
    mapped = {"ip": "::ffff:10.1.2.3", "port": 443, "sni": "intranet.example"}
    parsed = parse_list(_doc(private, loopback, mapped, GOOD), 10)
    assert [a.ip for a in parsed.addresses] == ["8.8.8.8"]
    assert parsed.not_public == 3
    allowed = parse_list(_doc(private, loopback, GOOD), 10, parse_allow_networks(["10.0.0.0/8"]))
    assert [a.ip for a in allowed.addresses] == ["10.1.2.3", "8.8.8.8"]
    assert allowed.not_public == 1  # loopback, whatever is allowed


def test_at_most_max_addresses_and_no_repeats() -> None:
    items = [{"ip": f"8.8.{i // 250}.{i % 250 + 1}", "port": 443, "sni": "a.example"}
             for i in range(30)]  # fmt: skip
    parsed = parse_list(_doc(GOOD, GOOD, *items), 20)
    assert len(parsed.addresses) == 20
    assert parsed.addresses[0] == Address("8.8.8.8", 443, "dns.google")
    assert parsed.beyond_cap == 11


@pytest.mark.parametrize("doc", [None, [], "x", {}, {"addresses": {}}, {"addresses": "x"}])
def test_an_answer_that_is_no_list_is_malformed(doc: Any) -> None:
    with pytest.raises(MalformedList):
        parse_list(doc, 10)
