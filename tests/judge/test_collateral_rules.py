"""Collateral: which addresses a record shows blocked at the address level, and who sits behind."""

from __future__ import annotations

import datetime

from collector.judge.collateral import (
    BlockedAddress,
    blocked_addresses,
    collateral,
    control_addresses,
)

T = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)


def doc(method: str, detail: str, tcp: list[dict], tls: list[dict] | None = None) -> dict:
    return {
        "verdict": {"status": "blocked", "method": method, "detail": detail},
        "target": {"domain": "legal.fr"},
        "tcp": tcp,
        "tls": tls or [],
        "control": {
            "dns": [
                {"name": "legal.fr", "answers": ["104.16.1.1", "104.16.1.2"]},
                {"name": "other.fr", "answers": ["9.9.9.9"]},
            ]
        },
    }


def test_tcp_block_names_every_failed_address_that_never_connected() -> None:
    d = doc(
        "tcp_ip",
        "timeout",
        [
            {"ip": "104.16.1.1", "failure": "generic_timeout_error"},
            {"ip": "104.16.1.2", "failure": None},
        ],
    )
    assert blocked_addresses(d) == ["104.16.1.1"]


def test_sni_filtering_is_not_an_address_block() -> None:
    tls = [
        {"ip": "104.16.1.1", "failure": "connection_reset", "neutral": False},
        {"ip": "104.16.1.1", "failure": None, "neutral": True},
    ]
    assert blocked_addresses(doc("tls", "reset_sni", [], tls)) == []


def test_tls_cut_for_every_name_is_an_address_block() -> None:
    tls = [
        {"ip": "104.16.1.1", "failure": "generic_timeout_error", "neutral": False},
        {"ip": "104.16.1.1", "failure": "generic_timeout_error", "neutral": True},
    ]
    assert blocked_addresses(doc("tls", "timeout", [], tls)) == ["104.16.1.1"]


def test_dns_and_ok_records_block_no_address() -> None:
    assert blocked_addresses(doc("dns", "nxdomain", [])) == []
    assert blocked_addresses({"verdict": {"status": "ok"}}) == []


def test_control_addresses_of_the_records_own_name() -> None:
    assert control_addresses(doc("dns", "nxdomain", [])) == ["104.16.1.1", "104.16.1.2"]


def test_one_row_per_blocked_address_with_every_service_behind_it() -> None:
    blocked = [
        BlockedAddress("104.16.1.1", 3215, "Orange", T, T),
        BlockedAddress("5.5.5.5", 3215, "Orange", T, T),
    ]
    rows = collateral(blocked, {"104.16.1.1": ["canal", "legal-two", "canal"], "6.6.6.6": ["x"]})
    assert [(r.ip, r.services) for r in rows] == [
        ("104.16.1.1", ("canal", "legal-two")),
        ("5.5.5.5", ()),
    ]
