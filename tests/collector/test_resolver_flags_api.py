"""GET /api/v1/flags per resolver path: the ``resolver`` and ``scope`` of each flag, the
``resolver`` filter and its bounds, the flag page and the export, on a collector over HTTP."""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from collector import cli
from tests.browser import dom
from tests.collector.harness import Collector, running
from tests.judge.test_resolver_flags import GOOGLE_REFUSED, ISP_OK, pathed
from tests.support.flags import recent


@pytest.fixture
async def google_everywhere(sqlite_url: str) -> AsyncIterator[Collector]:
    """A collector whose probes on Orange and Free see Google's resolver refuse mycanal while
    their own resolvers answer it, and whose probes on Orange see their ISP block deezer."""
    async with running(sqlite_url) as c:
        rows = []
        for network, p in (("Orange", "o"), ("Free", "f")):
            rows += [
                pathed(f"{p}{i}", recent(i), ISP_OK, GOOGLE_REFUSED, network=network)
                for i in (1, 2)
            ]
        isp_block = ("system", "blocked", "dns", None)
        rows += [pathed(f"o{i}", recent(3), isp_block, service="deezer") for i in (1, 2)]
        c.store.insert_batch(rows)
        yield c


async def flags(c: Collector, query: str = "") -> list[dict[str, Any]]:
    async with c.client.get(f"/api/v1/flags{query}") as r:
        assert r.status == 200, await r.text()
        return list((await r.json())["flags"])


def shown(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((f["network"], f["service"], f["resolver"], f["scope"]) for f in found)


async def test_flags_per_network_and_resolver_path(google_everywhere: Collector) -> None:
    everything = await flags(google_everywhere)
    assert shown(everything) == [
        ("Free", "mycanal", "google", "resolver"),
        ("Orange", "deezer", "isp", "network"),
        ("Orange", "mycanal", "google", "resolver"),
    ]
    assert shown(await flags(google_everywhere, "?resolver=google")) == [
        ("Free", "mycanal", "google", "resolver"),
        ("Orange", "mycanal", "google", "resolver"),
    ]
    assert shown(await flags(google_everywhere, "?resolver=isp&network=Orange")) == [
        ("Orange", "deezer", "isp", "network"),
    ]
    assert await flags(google_everywhere, "?resolver=quad9") == []


@pytest.mark.parametrize(
    "value, why",
    [
        ("-google", "resolver: '-google' does not match"),
        ("a" * 33, "does not match"),
        ("goo%20gle", "does not match"),
        ("", "does not match"),
        ("a%00b", "does not match"),
        ("%C3%A9", "does not match"),
    ],
)
async def test_a_bad_resolver_filter_is_a_json_400(
    google_everywhere: Collector, value: str, why: str
) -> None:
    async with google_everywhere.client.get(f"/api/v1/flags?resolver={value}") as r:
        assert r.status == 400
        assert r.content_type == "application/json"
        assert why in (await r.json())["error"]


async def test_a_repeated_resolver_filter_is_a_json_400(google_everywhere: Collector) -> None:
    async with google_everywhere.client.get("/api/v1/flags?resolver=a&resolver=b") as r:
        assert r.status == 400
        assert "resolver: given more than once" in (await r.json())["error"]


async def test_the_flag_page_says_the_resolver_and_its_reach(google_everywhere: Collector) -> None:
    [orange] = await flags(google_everywhere, "?resolver=google&network=Orange")
    async with google_everywhere.client.get(f"/flags/{orange['id']}?lang=en") as r:
        assert r.status == 200, await r.text()
        shown_page = dom.parse(await r.text())
    assert shown_page.by_id("flag-resolver").text().strip() == "google"
    assert shown_page.by_id("flag-scope").text() == "google blocks mycanal on every network"
    [isp] = await flags(google_everywhere, "?resolver=isp")
    async with google_everywhere.client.get(f"/flags/{isp['id']}?lang=fr") as r:
        isp_page = dom.parse(await r.text())
    assert isp_page.by_id("flag-resolver").text().strip() == "le résolveur du réseau"
    assert "flag-scope" not in await r.text()


async def test_the_overview_shows_what_networks_block_through_their_own_resolver(
    google_everywhere: Collector,
) -> None:
    async with google_everywhere.client.get("/?lang=en") as r:
        text = await r.text()
    [isp] = await flags(google_everywhere, "?resolver=isp")
    assert f"/flags/{isp['id']}" in text
    for f in await flags(google_everywhere, "?resolver=google"):
        assert f"/flags/{f['id']}" not in text


async def test_the_csv_export_names_the_resolver_after_the_evidence(
    google_everywhere: Collector, sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "flags.csv"
    args = ["export", "--what", "flags", "--db", sqlite_url, "--format", "csv", "-o", str(out)]
    assert cli.main([*args, "--resolver", "google"]) == 0
    header, *rows = list(csv.reader(io.StringIO(out.read_text())))
    at = header.index("evidence") + 1
    assert header[at : at + 2] == ["resolver", "scope"]
    assert sorted(r[header.index("network")] for r in rows) == ["Free", "Orange"]
    assert {(r[at], r[at + 1]) for r in rows} == {("google", "resolver")}


async def test_the_timeline_gives_a_public_path_lanes_of_its_own(
    google_everywhere: Collector,
) -> None:
    async with google_everywhere.client.get("/timeline?service=mycanal&lang=en") as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    assert "Orange (AS3215) · google" in text and "Free (AS12322) · google" in text


async def test_the_metrics_count_what_networks_block_through_their_own_resolver(
    google_everywhere: Collector,
) -> None:
    await flags(google_everywhere)  # judged: the gauges set
    async with google_everywhere.client.get("/metrics") as r:
        text = await r.text()
    series = [line for line in text.splitlines() if line.startswith("surblocage_flags_open{")]
    assert len(series) == 1 and 'service="deezer"' in series[0] and 'network="Orange"' in series[0]
    opened = [
        line for line in text.splitlines() if line.startswith("surblocage_flags_opened_total{")
    ]
    # one flag opened through the ISP's resolver (deezer); Google's two are the API's
    assert sum(float(line.rsplit(" ", 1)[1]) for line in opened) == 1.0, opened
