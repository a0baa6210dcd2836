"""probe.watchlist: the SPEC format, its safety checks, and the curated French watchlist."""

import ipaddress
import json
from pathlib import Path

import pytest

from probe import watchlist
from probe.record import CATEGORIES, Target
from probe.watchlist import WatchlistError

REPO = Path(__file__).resolve().parents[1]
ONE = {
    "id": "mycanal",
    "name": "myCANAL",
    "category": "iptv_legal",
    "urls": ["https://www.canalplus.com/"],
    "country": "FR",
    "notes": "cf=unknown",
}


def doc(**changes):
    service = {**ONE, **changes}
    return {"services": [{k: v for k, v in service.items() if v is not None}]}


def error_of(data, source="wl.yaml"):
    with pytest.raises(WatchlistError) as e:
        watchlist.parse_watchlist(data, source)
    return str(e.value)


def test_parse_yaml_text_gives_services_and_targets():
    text = """
services:
  - id: mycanal
    name: myCANAL
    category: iptv_legal
    urls: [https://www.CanalPlus.com, "http://canalplus.com:8080/live?x=1"]
    country: FR
  - id: rt
    name: RT
    category: control
    urls: [https://www.rt.com/]
    dns_only: true
"""
    wl = watchlist.parse_watchlist(text, "wl.yaml")
    assert [s.id for s in wl.services] == ["mycanal", "rt"]
    assert wl.services[0].country == "FR" and wl.services[0].notes is None
    assert wl.targets() == [
        Target("mycanal", "https://www.canalplus.com/", "www.canalplus.com", "iptv_legal"),
        Target("mycanal", "http://canalplus.com:8080/live?x=1", "canalplus.com", "iptv_legal"),
        Target("rt", "https://www.rt.com/", "www.rt.com", "control"),
    ]
    assert wl.is_dns_only(wl.targets()[2]) and not wl.is_dns_only(wl.targets()[0])
    assert wl.service("rt").dns_only is True and wl.service("nope") is None


def test_idn_host_is_idna_encoded():
    wl = watchlist.parse_watchlist(doc(urls=["https://Télé.fr/"]), "wl")
    assert wl.targets()[0].domain == "xn--tl-bjab.fr"
    assert wl.targets()[0].url == "https://xn--tl-bjab.fr/"


def test_json_form_round_trips():
    wl = watchlist.parse_watchlist(doc(dns_only=True), "wl")
    data = json.loads(json.dumps(watchlist.watchlist_to_dict(wl)))
    assert data["services"][0]["dns_only"] is True
    assert watchlist.parse_watchlist(data, "collector") == wl
    assert watchlist.parse_watchlist(json.dumps(data), "collector") == wl


def test_to_dict_omits_absent_optional_keys():
    wl = watchlist.parse_watchlist(doc(country=None, notes=None), "wl")
    assert watchlist.watchlist_to_dict(wl) == {
        "services": [
            {
                "id": "mycanal",
                "name": "myCANAL",
                "category": "iptv_legal",
                "urls": ["https://www.canalplus.com/"],
            }
        ]
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"urls": ["ftp://www.canalplus.com/"]}, "services[0].urls[0]: not an http or https URL"),
        (
            {"urls": ["https://user:pw@canalplus.com/"]},
            "services[0].urls[0]: must not carry user info",
        ),
        ({"urls": ["https://canalplus.com:99999/"]}, "services[0].urls[0]: not a valid URL"),
        ({"urls": ["https://canalplus.com:0/"]}, "services[0].urls[0]: port 0 is not a port"),
        (
            {"urls": ["http://192.168.1.1/"]},
            "services[0].urls[0]: 192.168.1.1 is not a public address",
        ),
        ({"urls": ["http://127.0.0.1:8080/"]}, "services[0].urls[0]: 127.0.0.1 is a loopback"),
        # IPv6 forms of loopback and private IPv4 (probe/addresses.py, the one policy)
        ({"urls": ["http://[::127.0.0.1]/"]}, "services[0].urls[0]: ::127.0.0.1 is a loopback"),
        ({"urls": ["http://[64:ff9b::7f00:1]/"]}, "services[0].urls[0]: 64:ff9b::7f00:1 is a loop"),
        (
            {"urls": ["http://[64:ff9b::a00:1]/"]},
            "services[0].urls[0]: 64:ff9b::a00:1 is not a public address",
        ),
        ({"urls": ["https://localhost/"]}, "services[0].urls[0]: 'localhost' is not a public host"),
        ({"urls": ["https://a..fr/"]}, "services[0].urls[0]: 'a..fr' is not a valid host name"),
        ({"urls": [42]}, "services[0].urls[0]: not an http or https URL"),
        ({"urls": []}, "services[0].urls: expected a non-empty list of URLs"),
        ({"id": "My Canal"}, "services[0].id: 'My Canal' does not match [a-z0-9_-]+"),
        ({"category": "piracy"}, "services[0].category: 'piracy' is not one of iptv_legal"),
        ({"country": "France"}, "services[0].country: 'France' is not a country code"),
        ({"dns_only": "yes"}, "services[0].dns_only: expected true or false, got 'yes'"),
        ({"name": ""}, "services[0].name: expected a non-empty string"),
        ({"name": None}, "services[0].name: missing"),
        ({"colour": "red"}, "services[0].colour: unknown key (known: category, country"),
    ],
)
def test_rejections_name_source_key_and_reason(changes, message):
    assert error_of(doc(**changes)).startswith(f"wl.yaml: {message}")


def test_duplicate_ids_are_rejected():
    data = {"services": [ONE, {**ONE, "name": "again"}]}
    assert error_of(data) == "wl.yaml: services[1].id: duplicate id 'mycanal'"


def test_top_level_shape_is_checked():
    assert (
        error_of({"services": [], "version": 2})
        == "wl.yaml: version: unknown key (known: services)"
    )
    assert error_of({"services": []}).endswith("expected a non-empty list of services")
    assert error_of([ONE]) == "wl.yaml: services: expected a mapping with the key 'services'"
    assert error_of("services: [\n  - id: x\n  name: y").startswith("wl.yaml: line 2: ")


def test_allowed_network_admits_a_lab_address_but_never_loopback():
    lab = [ipaddress.ip_network("10.200.0.0/16")]
    wl = watchlist.parse_watchlist(doc(urls=["http://10.200.3.4:8080/"]), "wl", lab)
    assert wl.targets()[0].domain == "10.200.3.4"
    everything = [ipaddress.ip_network("0.0.0.0/0")]
    with pytest.raises(WatchlistError, match="loopback"):
        watchlist.parse_watchlist(doc(urls=["http://127.0.0.1/"]), "wl", everything)


def test_load_watchlist_unreadable_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(WatchlistError) as e:
        watchlist.load_watchlist(missing)
    assert str(e.value).startswith(f"{missing}: file: cannot read it")


@pytest.mark.parametrize(
    ("text", "url", "domain"),
    [
        ("example.fr", "https://example.fr/", "example.fr"),
        ("  WWW.Example.FR  ", "https://www.example.fr/", "www.example.fr"),
        ("http://example.fr:8080/a?b=c#frag", "http://example.fr:8080/a?b=c", "example.fr"),
        ("https://[2001:db8::1]:8443/", None, None),
        ("https://[2606:4700::1]/x", "https://[2606:4700::1]/x", "2606:4700::1"),
    ],
)
def test_target_from_input(text, url, domain):
    if url is None:
        with pytest.raises(WatchlistError, match="not a public address"):
            watchlist.target_from_input(text)
        return
    t = watchlist.target_from_input(text)
    assert t == Target(service=domain, url=url, domain=domain, category="general")


@pytest.mark.parametrize(
    "text",
    ["ftp://example.fr/", "mailto:x@example.fr", "", "exa mple.fr", "https://", "http://[::1/"],
)
def test_target_from_input_rejects_with_the_input_named(text):
    with pytest.raises(WatchlistError) as e:
        watchlist.target_from_input(text)
    assert str(e.value).startswith(f"input: {text!r}: ")


def test_curated_french_watchlist():
    path = REPO / "configs" / "watchlist.yaml"
    assert path.resolve() == watchlist.PACKAGED_WATCHLIST  # configs/ links to the package data
    wl = watchlist.load_watchlist(path)
    assert len(wl.services) >= 80
    assert {s.category for s in wl.services} == set(CATEGORIES) - {"canary"}
    ids = [s.id for s in wl.services]
    assert len(ids) == len(set(ids))
    text = path.read_text(encoding="utf-8")
    assert ".example" not in text and "PLACEHOLDER" not in text
    assert all(1 <= len(s.urls) <= 3 for s in wl.services)
    assert all(s.notes and s.notes.startswith("cf=") for s in wl.services)
    dns_only = {s.id for s in wl.services if s.dns_only}
    assert "positive-rt" in dns_only
    assert all(wl.service(i).category == "control" for i in dns_only)
