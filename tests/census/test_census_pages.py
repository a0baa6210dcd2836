"""The census on the dashboard: the headline's unreachable legal domains and the collateral
view's domains per blocked address are the census API's numbers."""

from __future__ import annotations

from collector import app, handlers
from tests.browser import dom
from tests.census.conftest import X, Y, mixed
from tests.collector.harness import Collector
from tests.support.census_fill import CensusFill


async def html(collector: Collector, path: str) -> dom.Node:
    async with collector.client.get(path) as r:
        assert r.status == 200, await r.text()
        return dom.parse(await r.text())


async def test_the_headline_counts_the_legal_domains_the_census_counts(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    # the headline reads the census as the metrics' refresh (every 30 s) last counted it
    await app.refresh_census(collector.app[handlers.STATE])
    async with collector.client.get("/api/v1/census") as r:
        census = (await r.json())["networks"]
    page = await html(collector, "/?lang=en")
    cards = {li.attrs["data-network"]: li for li in page.by_id("headline").find("li", "card")}
    for n in census:
        card = cards[f"{n['network']} (AS{n['asn']})"]
        counts = {s.attrs["data-count"]: s.text() for s in card.find() if "data-count" in s.attrs}
        assert counts["domains"] == str(n["collateral_domains"])
        assert counts["addresses"] == str(n["blocked_addresses"])
        assert counts["services"] == "0"  # no service flag in this census


async def test_the_collateral_view_gives_the_domains_behind_each_address(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    async with collector.client.get("/api/v1/census/addresses?state=open") as r:
        items = (await r.json())["addresses"]
    expected = {i["ip"]: i["collateral_domains"] for i in items}
    assert set(expected) == {X, Y}
    page = await html(collector, "/collateral?lang=en")
    rows = {
        tr.attrs["data-ip"]: tr
        for tr in page.by_id("collateral").find("tr")
        if "data-ip" in tr.attrs
    }
    for ip, n in expected.items():
        [cell] = [td for td in rows[ip].find("td") if "data-domains" in td.attrs]
        assert cell.attrs["data-domains"] == str(n)
    assert "Orange (AS3215)" in rows[Y].text()
