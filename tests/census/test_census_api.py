"""The census's read routes over a filled census: counts exactly right, pages, bad parameters."""

from __future__ import annotations

from typing import Any

import prometheus_client.parser
import pytest

from collector import app, handlers
from tests.census.conftest import X, Y, Z, mixed
from tests.collector.harness import Collector, answer_validator
from tests.support.census_fill import CensusFill, text


async def get(collector: Collector, path: str, status: int = 200, **params: Any) -> Any:
    async with collector.client.get(path, params=params) as r:
        body = await r.json()
        assert r.status == status, body
    if status == 200:
        answer_validator(_pattern(path), "get", "200").validate(body)
    return body


def _pattern(path: str) -> str:
    if path.startswith("/api/v1/census/addresses/"):
        return "/api/v1/census/addresses/{ip}"
    return path


async def test_census_counts_each_network_apart(collector: Collector, fill: CensusFill) -> None:
    mixed(fill)
    answer = await get(collector, "/api/v1/census")
    free = {
        "asn": 12322,
        "network": "Free",
        "blocked_addresses": 1,  # Y's flag closed
        "collateral_domains": 2,  # a, b on X; moved left X
        "intended_domains": 0,
        "watched_services": 1,
        "since": text(4),
    }
    orange = {
        "asn": 3215,
        "network": "Orange",
        "blocked_addresses": 2,
        "collateral_domains": 2,  # a (on X and Y) once, b
        "intended_domains": 1,  # pirate, apart
        "watched_services": 1,
        "since": text(1),
    }
    assert answer["networks"] == [free, orange]  # SFR's flag closed: not blocked now
    assert (await get(collector, "/api/v1/census", network="Orange"))["networks"] == [orange]
    assert (await get(collector, "/api/v1/census", asn="12322"))["networks"] == [free]
    assert (await get(collector, "/api/v1/census", network="SFR"))["networks"] == []


async def test_an_empty_census_is_empty(collector: Collector) -> None:
    answer = await get(collector, "/api/v1/census")
    assert answer["networks"] == [] and answer["generated_at"].endswith("Z")


async def test_census_addresses_one_item_a_network_and_address(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    on_x = {"domains": 2, "collateral_domains": 2, "intended_domains": 0, "services": ["mycanal"]}
    on_y = {"domains": 2, "collateral_domains": 1, "intended_domains": 1, "services": []}
    answer = await get(collector, "/api/v1/census/addresses")
    got = {(i["network"], i["ip"]): i for i in answer["addresses"]}
    assert set(got) == {("Orange", X), ("Orange", Y), ("Free", X), ("Free", Y), ("SFR", X)}
    assert got[("Orange", X)] == {
        "ip": X,
        "asn": 3215,
        "network": "Orange",
        "state": "open",
        "first_seen": text(1),
        "last_seen": text(6),
        **on_x,
    }
    assert got[("Free", Y)] == {
        "ip": Y,
        "asn": 12322,
        "network": "Free",
        "state": "closed",
        "first_seen": text(1),
        "last_seen": text(3),
        **on_y,
    }

    async def keys(**params: Any) -> set[tuple[str, str]]:
        found = await get(collector, "/api/v1/census/addresses", **params)
        return {(i["network"], i["ip"]) for i in found["addresses"]}

    assert await keys(state="closed") == {("Free", Y), ("SFR", X)}
    assert await keys(network="Free", state="open") == {("Free", X)}
    assert await keys(asn="3215") == {("Orange", X), ("Orange", Y)}
    # in force at some time in [since, until)
    assert await keys(until=text(1.5)) == {("Orange", X), ("Free", Y), ("SFR", X)}
    assert await keys(since=text(3.5)) == {("Orange", X), ("Orange", Y), ("Free", X)}


async def test_one_address_pages_its_domains_best_ranked_first(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    path = f"/api/v1/census/addresses/{X}"
    first = await get(collector, path, limit="2")
    assert [(d["name"], d["rank"], d["current"]) for d in first["domains"]] == [
        ("a.example", 1, True),
        ("b.example", 2, True),
    ]
    assert first["next_cursor"] is not None
    second = await get(collector, path, limit="2", cursor=first["next_cursor"])
    assert second["domains"] == [
        {
            "name": "moved.example",
            "rank": 5,
            "intended": False,
            "current": False,
            "first_seen": text(0),
            "last_seen": text(0),
        }
    ]
    assert second["next_cursor"] is None
    assert [(n["network"], n["method"], n["state"]) for n in first["networks"]] == [
        ("Free", "tls", "open"),
        ("Orange", "tcp_ip", "open"),
        ("SFR", "tcp_ip", "closed"),
    ]
    assert first["networks"][0]["evidence"] == ["s-1", "s-2"]
    assert first["networks"][2]["closed_at"] == text(0.5)


async def test_an_address_known_without_flags_and_the_unknown_ones(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    on_z = await get(collector, f"/api/v1/census/addresses/{Z}")
    assert [d["name"] for d in on_z["domains"]] == ["c.example", "moved.example"]
    assert on_z["networks"] == []
    unknown = await get(collector, "/api/v1/census/addresses/192.0.2.77", 404)
    assert unknown == {"error": "ip: 192.0.2.77 is not known to the census"}
    # the address is spelled canonically before it is looked up
    spelled = await get(collector, "/api/v1/census/addresses/2001:DB8:0::1", 404)
    assert spelled["error"].startswith("ip: 2001:db8::1 ")


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/v1/census", {"color": "red"}, "color"),
        ("/api/v1/census", {"asn": "AS3215"}, "asn"),
        ("/api/v1/census", {"state": "open"}, "state"),
        ("/api/v1/census/addresses", {"state": "maybe"}, "state"),
        ("/api/v1/census/addresses", {"since": "yesterday"}, "since"),
        ("/api/v1/census/addresses", {"until": "2026-11-01T00:00:00"}, "until"),
        ("/api/v1/census/addresses", {"network": ["Free", "Orange"]}, "network"),
        (f"/api/v1/census/addresses/{X}", {"limit": "0"}, "limit"),
        (f"/api/v1/census/addresses/{X}", {"limit": "1001"}, "limit"),
        (f"/api/v1/census/addresses/{X}", {"cursor": "not-a-cursor"}, "cursor"),
        (f"/api/v1/census/addresses/{X}", {"cursor": "WyJhIiwxXQ"}, "cursor"),  # ["a",1]
        (f"/api/v1/census/addresses/{X}", {"cursor": "A" * 100}, "cursor"),
        (f"/api/v1/census/addresses/{X}", {"network": "Free"}, "network"),
        ("/api/v1/census/addresses/not-an-address", {}, "ip"),
        ("/api/v1/census/addresses/203.0.113.300", {}, "ip"),
        ("/api/v1/census/history", {"step": "week"}, "step"),
        ("/api/v1/census/history", {"state": "open"}, "state"),
        ("/api/v1/census/history", {"since": "2026-11-02T00:00:00Z",
                                    "until": "2026-11-01T00:00:00Z"}, "until"),
        ("/api/v1/census/history", {"since": "2020-01-01T00:00:00Z",
                                    "until": "2026-01-01T00:00:00Z"}, "step"),
        ("/api/v1/census/history", {"since": "2020-01-01T00:00:00Z", "step": "day",
                                    "until": "2026-01-01T00:00:00Z"}, "step"),
        ("/api/v1/census/history", {"step": ["hour", "day"]}, "step"),
    ],
)  # fmt: skip
async def test_every_bad_parameter_is_a_400_naming_it(
    collector: Collector, path: str, params: dict[str, Any], named: str
) -> None:
    query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    async with collector.client.get(path, params=query) as r:
        body = await r.json()
        assert r.status == 400, body
    assert body["error"].startswith(f"{named}: "), body
    answer_validator(_pattern(path), "get", "400").validate(body)


async def test_the_gauges_read_the_census_numbers(collector: Collector, fill: CensusFill) -> None:
    mixed(fill)
    await app.refresh_census(collector.app[handlers.STATE])
    async with collector.client.get("/metrics") as r:
        exposed = await r.text()
    samples = {
        (s.name, s.labels["asn"], s.labels["network"]): s.value
        for family in prometheus_client.parser.text_string_to_metric_families(exposed)
        if family.name
        in ("surblocage_census_blocked_addresses", "surblocage_census_collateral_domains")
        for s in family.samples
    }
    assert samples == {
        ("surblocage_census_blocked_addresses", "12322", "Free"): 1,
        ("surblocage_census_blocked_addresses", "3215", "Orange"): 2,
        ("surblocage_census_collateral_domains", "12322", "Free"): 2,
        ("surblocage_census_collateral_domains", "3215", "Orange"): 2,
    }
    fill.flag("Orange", Z, 7, asn=3215)  # c and moved are on Z now
    await app.refresh_census(collector.app[handlers.STATE])
    async with collector.client.get("/metrics") as r:
        assert 'surblocage_census_collateral_domains{asn="3215",network="Orange"} 4.0' in (
            await r.text()
        )


async def test_collateral_lists_open_address_flags_with_a_watched_service_behind(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    answer = await get(collector, "/api/v1/collateral")
    # X (mycanal behind it) on the two networks where its flag is open; Y: no watched service
    assert sorted(answer["addresses"], key=lambda a: a["network"]) == [
        {
            "ip": X,
            "asn": 12322,
            "network": "Free",
            "services": ["mycanal"],
            "first_seen": text(4),
            "last_seen": text(6),
        },
        {
            "ip": X,
            "asn": 3215,
            "network": "Orange",
            "services": ["mycanal"],
            "first_seen": text(1),
            "last_seen": text(6),
        },
    ]
    only = await get(collector, "/api/v1/collateral", network="Orange")
    assert [a["network"] for a in only["addresses"]] == ["Orange"]


async def test_the_census_lists_take_an_order(collector: Collector, fill: CensusFill) -> None:
    mixed(fill)
    for path, key in (("/api/v1/census", "networks"), ("/api/v1/census/addresses", "addresses")):
        default = (await get(collector, path))[key]
        assert len(default) >= 2
        assert (await get(collector, path, order="desc"))[key] == default
        assert (await get(collector, path, order="asc"))[key] == default[::-1]
        await get(collector, path, status=400, order="up")
