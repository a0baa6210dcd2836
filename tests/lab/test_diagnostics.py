"""The probe's diagnostics in the lab: real `check --json` processes, with and without CAP_NET_RAW.

The lab is tests/lab/diagnostics_world.py: an ISP whose middlebox sits on a core router two or
three hops away, an on-path DNS injector, a resolver that lies by itself, a box that resets
by SNI or Host, and a web host that resets the probes itself.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import diagnostics_world as world
from tests.lab.report import start_collector
from tests.lab.topology import FINGERPRINTS, Lab, unusable_reason

INJECTED = "https://inject.example/"
LYING = "https://dns-lo.example/"
SNI_RESET = "https://sni-rst.example/"
HOST_RESET = "http://host-rst.example/"
SERVER_RESET = "https://srv-rst.example/"
OK = "https://ok.example/"


@pytest.fixture(scope="module")
def diag_lab() -> Iterator[Lab]:
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab(prefix=f"sbdiag{os.getpid()}", isps=world.ISPS, techniques=world.TECHNIQUES_HERE).up()
    try:
        lab.exec("internet", world.server_reset_rule(lab.isp("a").lan)).check_returncode()
        assert start_collector(lab) is not None
        yield lab
    finally:
        lab.down()


def check(lab: Lab, resolver: str, *urls: str, raw: bool = True) -> dict[str, dict[str, Any]]:
    """Run `surblocage-probe check --json` in probe_a (as root, or without CAP_NET_RAW)."""
    command = str(pathlib.Path(sys.executable).with_name("surblocage-probe"))
    argv = [
        command, "check", "--json", "--quiet", "--resolver", resolver, "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network, "--fingerprints", str(FINGERPRINTS),
        "--control", lab.control_url, "--timeout", "3", *urls,
    ]  # fmt: skip
    if not raw:  # root without CAP_NET_RAW: what a volunteer gets once the unit drops it
        argv = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--", *argv]
    done = lab.exec("probe_a", argv, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["target"]["url"]: r for r in records}


def test_an_injector_is_on_the_path_and_located_at_its_hop(diag_lab: Lab) -> None:
    r = check(diag_lab, diag_lab.public_resolver, INJECTED)[INJECTED]
    assert (r["verdict"]["status"], r["verdict"]["method"]) == ("blocked", "dns")
    d = r["diagnostics"]
    injection = d["dns_injection"]
    assert injection["result"] in ("on_path", "race")
    assert injection["queried"] == diag_lab.collector_addr  # runs no resolver
    # the injector forged a reply from the address asked, with its block page
    assert [a["source"] for a in injection["answers"]] == [diag_lab.collector_addr]
    assert injection["answers"][0]["addresses"] == [diag_lab.isp("a").blockpage]
    # the injector taps the LAN of router_a: the first hop, the router's LAN address
    loc = d["location"]
    assert (loc["result"], loc["trigger"], loc["hop"], loc["address"]) == (
        "found", "dns", 1, diag_lab.isp("a").router,
    )  # fmt: skip
    assert d["reset_origin"] is None
    assert d["packets"] > 0 and d["malformed"] == 0


def test_a_resolver_lying_by_itself_is_no_injection(diag_lab: Lab) -> None:
    r = check(diag_lab, diag_lab.resolver("a"), LYING)[LYING]
    assert (r["verdict"]["status"], r["verdict"]["method"]) == ("blocked", "dns")
    d = r["diagnostics"]
    assert d["dns_injection"]["result"] == "none" and d["dns_injection"]["answers"] == []
    # the lie comes from the resolver itself: both names are answered alike at hop 1
    assert d["location"]["result"] == "not_found"


@pytest.mark.parametrize("hop", [1, 2])
def test_an_injected_reset_comes_from_the_path_at_the_box(diag_lab: Lab, hop: int) -> None:
    diag_lab.move_box("a", hop)
    try:
        records = check(diag_lab, diag_lab.resolver("a"), SNI_RESET, HOST_RESET, OK)
    finally:
        diag_lab.move_box("a", 1)
    where, address = world.BOX_HOPS[hop]
    for url, trigger in ((SNI_RESET, "tls"), (HOST_RESET, "http")):
        r = records[url]
        assert r["verdict"]["status"] == "blocked", url
        d = r["diagnostics"]
        origin = d["reset_origin"]
        # the server is 3 routers away (TTL 61), the box's reset crossed hop - 1 of them
        assert (origin["result"], origin["synack_ttl"], origin["rst_ttl"]) == (
            "path", 61, 64 - (where - 1),
        ), url  # fmt: skip
        loc = d["location"]
        assert (loc["result"], loc["trigger"], loc["hop"], loc["address"]) == (
            "found", trigger, where, address,
        ), (url, loc)  # fmt: skip
    assert records[OK]["verdict"]["status"] == "ok" and records[OK]["diagnostics"] is None


def test_a_server_that_resets_is_told_from_a_box(diag_lab: Lab) -> None:
    r = check(diag_lab, diag_lab.resolver("a"), SERVER_RESET)[SERVER_RESET]
    assert r["verdict"]["status"] == "blocked"
    origin = r["diagnostics"]["reset_origin"]
    assert (origin["result"], origin["synack_ttl"], origin["rst_ttl"]) == ("server", 61, 61)
    # the host resets the neutral name too: nothing on the path differs
    assert r["diagnostics"]["location"]["result"] == "not_found"


def test_without_cap_net_raw_the_verdicts_hold_and_diagnostics_are_skipped(
    diag_lab: Lab,
) -> None:
    urls = (SNI_RESET, SERVER_RESET, OK)
    raw = check(diag_lab, diag_lab.resolver("a"), *urls)
    plain = check(diag_lab, diag_lab.resolver("a"), *urls, raw=False)
    for url in urls:
        assert plain[url]["verdict"] == raw[url]["verdict"], url
    assert plain[SNI_RESET]["diagnostics"] == {"skipped": "no_raw_socket"}
    assert plain[SERVER_RESET]["diagnostics"] == {"skipped": "no_raw_socket"}
    assert plain[OK]["diagnostics"] is None
