"""The dashboard in a real headless Chromium, against an in-process collector on loopback.

Records are submitted over HTTP (the collector judges them, opens flags and finds collateral);
Chromium loads the page, runs its script and dumps the DOM, which the tests read like a user.
Without Chromium the tests skip (a failure in strict mode, CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import re
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from collector import dashboard
from collector.judge import open_store
from collector.store import migrate
from tests.browser import chromium, dom, scene
from tests.collector.harness import Collector, running
from tests.collector.test_api import DEAD_DATABASE


@dataclasses.dataclass
class Shown:
    """The page as Chromium rendered it, Chromium's log, and what the API answered."""

    page: dom.Node
    markup: str
    log: str
    api: dict[str, Any]


@contextlib.asynccontextmanager
async def populated(tmp: pathlib.Path) -> AsyncIterator[tuple[Collector, str]]:
    url = f"sqlite:///{tmp}/collector.db"
    migrate(url)
    async with running(url) as c:
        await scene.populate(c)
        yield c, str(c.client.make_url("/"))


async def _render(tmp: pathlib.Path) -> Shown:
    async with populated(tmp) as (c, base):
        api = {}
        for path in ("flags", "collateral", "measurements?limit=1000"):
            async with c.client.get(f"/api/v1/{path}") as r:
                api[path.split("?")[0]] = await r.json()
        markup, log = await chromium.dump_dom(tmp, base)
    return Shown(dom.parse(markup), markup, log, api)


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> Shown:
    """One collector, one Chromium run, read by several tests."""
    chromium.executable()
    return asyncio.run(_render(tmp_path_factory.mktemp("dashboard")))


def console(log: str) -> list[str]:
    """The page's console messages (script errors, refused policies) from Chromium's log."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def day_minute(iso: str) -> str:
    return iso[:16].replace("T", " ")


def test_the_script_ran_once_without_a_console_message(shown: Shown) -> None:
    assert shown.page.find("body")[0].attrs["data-refreshes"] == "1"
    assert console(shown.log) == []
    assert "hidden" in shown.page.by_id("errors").attrs
    assert shown.page.by_id("updated").text().startswith("Last updated ")


def test_open_flags_are_rows_sorted_by_network_then_service(shown: Shown) -> None:
    rows = shown.page.by_id("open-flags").rows()
    assert [r[:4] for r in rows] == [
        [f"{scene.HOSTILE} AS64512", "francetv", "vod", "dns"],
        ["Free AS12322", "beinsports", "sports_legal", "tcp_ip"],
        ["Free AS12322", "deezer", "music", "tcp_ip"],
        ["Free AS12322", "mycanal", "iptv_legal", "tcp_ip"],
        ["Orange AS3215", "mycanal", "iptv_legal", "dns"],
    ]
    flags = {(f["network"], f["service"]): f for f in shown.api["flags"]["flags"]}
    for row in rows:
        flag = flags[(row[0].rsplit(" AS", 1)[0], row[1])]
        assert row[4].startswith(day_minute(flag["first_seen"]))
        assert row[5] == str(len(flag["probes"])) == "2"
        assert row[6] == f"{round(flag['confidence'] * 100)} %"
    assert shown.page.by_id("open-count").text() == "(5)"


def test_closed_flags_are_in_a_second_collapsed_table(shown: Shown) -> None:
    closed = shown.page.by_id("closed")
    assert closed.tag == "details" and "open" not in closed.attrs
    [flag] = [f for f in shown.api["flags"]["flags"] if f["state"] == "closed"]
    [row] = shown.page.by_id("closed-flags").rows()
    assert row[:4] == ["SFR AS15557", "deezer", "music", "dns"]
    assert row[7].startswith(day_minute(flag["closed_at"]))
    assert shown.page.by_id("closed-count").text() == "(1)"


def test_a_blocked_address_shows_every_service_behind_it(shown: Shown) -> None:
    table = shown.page.by_id("collateral-table")
    [row] = table.rows()
    assert row[:2] == [scene.SHARED, "Free AS12322"]
    [address] = shown.api["collateral"]["addresses"]
    assert row[3].startswith(day_minute(address["first_seen"]))
    assert [s.text() for s in table.find("strong")] == ["3 services down"]
    chips = [li.text() for li in table.find("li")]
    assert chips == address["services"] == ["beinsports", "deezer", "mycanal"]


def test_latest_measurements_carry_verdict_badges_newest_first(shown: Shown) -> None:
    table = shown.page.by_id("measurements-table")
    stored = shown.api["measurements"]["measurements"]
    rows = table.rows()
    assert len(rows) == len(stored) == 17  # fewer than 50: all of them
    newest = sorted(stored, key=lambda m: m["started_at"], reverse=True)
    assert [r[3] for r in rows] == [m["target"]["domain"] for m in newest]
    badges = {b.text(): b.attrs["class"] for b in table.find("span", "badge")}
    assert badges == {
        "ok": "badge badge-ok",
        "blocked": "badge badge-blocked",
        "down": "badge badge-down",
        "inconclusive": "badge badge-inconclusive",
    }
    down = [r for r in rows if r[2] == "ligue1"]
    assert [(r[1], r[4], r[5]) for r in down] == [("Bouygues AS5410", "down", "tcp")]
    cut = [r for r in rows if r[1] == "Free AS12322"]
    assert {(r[4], r[5]) for r in cut} == {("blocked", "tcp_ip · timeout")}


def test_a_hostile_network_name_is_text_never_an_element(shown: Shown) -> None:
    assert shown.page.find("img") == []
    assert not re.search(r"<img\b", shown.markup, re.IGNORECASE)
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown.markup
    texts = [td.text() for td in shown.page.by_id("open-flags").find("td")]
    assert f"{scene.HOSTILE} AS64512" in texts
    options = [o.text() for o in shown.page.by_id("filter-network").find("option")]
    assert options == ["all networks", scene.HOSTILE, "Free", "Orange", "SFR"]


@pytest.fixture
def tmp(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    chromium.executable()
    yield tmp_path


async def test_filters_in_the_address_narrow_the_flags(tmp: pathlib.Path) -> None:
    async with populated(tmp) as (_, base):
        markup, log = await chromium.dump_dom(tmp, f"{base}?network=Free&category=music")
    page = dom.parse(markup)
    assert console(log) == []
    assert [r[:4] for r in page.by_id("open-flags").rows()] == [
        ["Free AS12322", "deezer", "music", "tcp_ip"]
    ]
    assert page.by_id("open-count").text() == "(1 of 5)"
    assert page.by_id("closed-flags").rows() == [["No closed flag matching the filters."]]
    assert len(page.by_id("collateral-table").rows()) == 1  # the filters are the flags' only


async def test_errors_from_the_api_are_shown_in_the_page(tmp: pathlib.Path) -> None:
    url = f"sqlite:///{tmp}/unused.db"
    migrate(url)
    with open_store(DEAD_DATABASE) as dead:
        async with running(url, store=dead) as c:
            markup, _ = await chromium.dump_dom(tmp, str(c.client.make_url("/")))
    page = dom.parse(markup)
    errors = page.by_id("errors")
    assert "hidden" not in errors.attrs
    problems = [li.text() for li in errors.find("li")]
    assert problems == [
        f"{path}: HTTP 503: the database is unavailable; try again later"
        for path in ("/api/v1/flags", "/api/v1/collateral", "/api/v1/measurements")
    ]
    assert page.by_id("updated").text().endswith("UTC: 3 of 3 parts failed")
    assert page.by_id("open-flags").rows() == [["Not available: see the errors above."]]


def png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_a_screenshot_of_the_populated_page(tmp: pathlib.Path) -> None:
    async with populated(tmp) as (_, base):
        shot = await chromium.screenshot(tmp, base, (1280, 900))
    assert png_size(shot) == (1280, 900)
    # a blank or unstyled page compresses to a few kilobytes; tables, badges and text do not
    assert shot.stat().st_size > 40_000


async def test_the_policy_makes_markup_from_strings_throw(tmp: pathlib.Path) -> None:
    """The page's policy, served with a script that assigns innerHTML: Chromium refuses it."""

    async def page(_: web.Request) -> web.Response:
        body = '<!doctype html><body><p id="p">text</p><script src="/t.js"></script></body>'
        return web.Response(text=body, content_type="text/html", headers=dashboard.SECURITY_HEADERS)

    async def script(_: web.Request) -> web.Response:
        js = 'document.getElementById("p").innerHTML = "<img id=injected src=x>";'
        return web.Response(text=js, content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/t.js", script)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        markup, log = await chromium.dump_dom(tmp, f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    assert dom.parse(markup).by_id("p").text() == "text"
    assert dom.parse(markup).find("img") == []
    assert any("TrustedHTML" in line for line in console(log)), console(log)
