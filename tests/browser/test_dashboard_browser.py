"""The dashboard in a real headless Chromium, against an in-process collector on loopback.

Records are submitted over HTTP (the collector judges them, opens flags and finds collateral);
Chromium loads the page, runs its script and dumps the DOM, which the tests read like a user.
Without Chromium the tests skip (a failure in strict mode, CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import re
import shutil
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
    """A page as Chromium rendered it, and Chromium's log."""

    page: dom.Node
    markup: str
    log: str


@contextlib.asynccontextmanager
async def populated(tmp: pathlib.Path) -> AsyncIterator[tuple[Collector, str]]:
    url = f"sqlite:///{tmp}/collector.db"
    migrate(url)
    async with running(url) as c:
        await scene.populate(c)
        yield c, str(c.client.make_url("/")).rstrip("/")


def console(log: str) -> list[str]:
    """The page's console messages (script errors, refused policies) from Chromium's log."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


@dataclasses.dataclass
class Scene:
    """Every page of one filled collector as Chromium rendered it, and what the API said."""

    pages: dict[str, Shown]
    api: dict[str, Any]


PAGES = {
    "overview": "/?lang=en",
    "overview_fr": "/?lang=fr",
    "timeline": "/timeline?service=deezer&lang=en",
    "collateral": "/collateral?lang=en",
}


async def _render(tmp: pathlib.Path) -> Scene:
    async with populated(tmp) as (c, base):
        async with c.client.get("/api/v1/flags") as r:
            api = {"flags": (await r.json())["flags"]}
        pages = {}
        for name, path in PAGES.items():
            markup, log = await chromium.dump_dom(tmp / name, base + path)
            pages[name] = Shown(dom.parse(markup), markup, log)
        # a blocked cell's link, followed as a reader would
        cell = next(
            td for td in pages["overview"].page.find("td", "cell")
            if td.attrs["data-state"] == "blocked"
        )  # fmt: skip
        href = cell.find("a")[0].attrs["href"]
        markup, log = await chromium.dump_dom(tmp / "flag", base + href)
        pages["flag"] = Shown(dom.parse(markup), markup, log)
        api["followed"] = href
    return Scene(pages, api)


@pytest.fixture(scope="module")
def scene_(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """One collector, every page rendered once, read by several tests."""
    chromium.executable()
    return asyncio.run(_render(tmp_path_factory.mktemp("dashboard")))


def test_every_page_ran_its_script_without_a_console_message(scene_: Scene) -> None:
    for name, shown in scene_.pages.items():
        root = shown.page.find("html")[0]
        assert root.attrs.get("data-ready") == "1", name
        assert console(shown.log) == [], name


def test_the_matrix_cells_are_the_open_flags(scene_: Scene) -> None:
    page = scene_.pages["overview"].page
    shown = {
        (tr.attrs["data-service"], td.attrs["data-network"])
        for tr in page.by_id("matrix").find("tr")
        if tr.attrs.get("data-service")
        for td in tr.find("td", "cell")
        if td.attrs["data-state"] == "blocked"
    }
    expected = {
        (f["service"], f"{f['network']} (AS{f['asn']})")
        for f in scene_.api["flags"]
        if f["state"] == "open"
    }
    assert shown == expected


def test_a_cell_leads_to_its_flags_evidence(scene_: Scene) -> None:
    href = scene_.api["followed"]
    fid = href.split("/flags/")[1].split("?")[0]
    [flag] = [f for f in scene_.api["flags"] if f["id"] == fid]
    page = scene_.pages["flag"].page
    facts = page.by_id("flag-facts").text()
    assert flag["service"] in facts and flag["method"] in facts
    evidence = [a.attrs["href"] for a in page.by_id("evidence").find("a")]
    assert evidence == [f"/measurements/{rid}?lang=en" for rid in flag["evidence"]]
    # what the probes' diagnostics found, in words, as the API counts it
    diagnosed, said = flag["diagnostics"], page.by_id("diagnostics")
    assert int(said.attrs["data-probes"]) == diagnosed["probes"] == 2
    where = diagnosed["location"]
    assert f"Interference at hop {where['hop']} ({where['address']})" in said.text()
    assert "located there by 2 probes." in said.text()


def test_the_timeline_draws_the_lifted_block_as_closed(scene_: Scene) -> None:
    page = scene_.pages["timeline"].page
    [lane] = [d for d in page.find("div", "lane") if d.attrs["data-lane"] == "SFR (AS15557)"]
    [bar] = lane.find("rect", "bar")
    assert "closed" in bar.attrs["class"].split() and bar.attrs["data-end"]


def test_french_and_english(scene_: Scene) -> None:
    fr, en = scene_.pages["overview_fr"].page, scene_.pages["overview"].page
    assert fr.find("html")[0].attrs["lang"] == "fr" and "Services par réseau" in fr.text()
    assert en.find("html")[0].attrs["lang"] == "en" and "Services by network" in en.text()


def test_a_hostile_network_name_is_text_never_an_element(scene_: Scene) -> None:
    for name, shown in scene_.pages.items():
        assert shown.page.find("img") == [], name
        assert not re.search(r"<img\b", shown.markup, re.IGNORECASE), name


@pytest.fixture
def tmp(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    chromium.executable()
    yield tmp_path


PHONE = (390, 844)


@pytest.mark.parametrize("path", [*PAGES.values(), "/flags/{flag}?lang=fr"])
async def test_a_phone_viewport_has_no_horizontal_scroll(tmp: pathlib.Path, path: str) -> None:
    async with populated(tmp) as (c, base):
        async with c.client.get("/api/v1/flags?state=open") as r:
            flag = (await r.json())["flags"][0]["id"]
        markup, log = await chromium.run(
            tmp / "phone",
            base + path.format(flag=flag),
            "--dump-dom",
            f"--window-size={PHONE[0]},{PHONE[1]}",
        )
    root = dom.parse(markup).find("html")[0]
    assert root.attrs.get("data-ready") == "1", console(log)
    assert root.attrs.get("data-overflow") == "none"


async def test_errors_from_the_database_are_a_json_503(tmp: pathlib.Path) -> None:
    url = f"sqlite:///{tmp}/unused.db"
    migrate(url)
    with open_store(DEAD_DATABASE) as dead:
        async with running(url, store=dead) as c:
            async with c.client.get("/") as r:
                assert r.status == 503
                assert "database" in (await r.json())["error"]


def png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# README's pictures: SURBLOCAGE_SCREENSHOTS=docs/img pytest tests/browser -k screenshots
SHOTS = {
    "dashboard-matrix.png": ("/?lang=en", (1280, 900)),
    "dashboard-timeline.png": ("/timeline?lang=en&days=2", (1280, 700)),
    "dashboard-collateral.png": ("/collateral?lang=en", (1280, 600)),
    "dashboard-phone.png": ("/?lang=fr", PHONE),
}


async def test_screenshots_of_the_matrix_timeline_and_collateral(tmp: pathlib.Path) -> None:
    keep = os.environ.get("SURBLOCAGE_SCREENSHOTS")
    async with populated(tmp) as (_, base):
        for name, (path, size) in SHOTS.items():
            (tmp / name).mkdir()
            shot = await chromium.screenshot(tmp / name, base + path, size)
            assert png_size(shot) == size
            # a blank or unstyled page compresses to a few kilobytes; tables and text do not
            assert shot.stat().st_size > 20_000, name
            if keep:
                shutil.copy(shot, pathlib.Path(keep) / name)


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
