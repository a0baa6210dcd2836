"""The dashboard's HTTP side: the pages' policy, their files, their headers, and what /static/
refuses."""

from __future__ import annotations

import html.parser
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl

from collector import dashboard
from tests.collector.harness import Collector, running


@pytest.fixture
async def served(sqlite_url: str) -> AsyncIterator[Collector]:
    async with running(sqlite_url) as c:
        yield c


class References(html.parser.HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]


def references(page: str) -> list[str]:
    parser = References()
    parser.feed(page)
    return parser.urls


async def test_the_page_is_served_with_a_strict_policy(served: Collector) -> None:
    async with served.client.get("/") as r:
        assert r.status == 200
        assert r.content_type == "text/html" and r.charset == "utf-8"
        page = await r.text()
        headers = r.headers
    policy = [p.strip() for p in headers["Content-Security-Policy"].split(";")]
    assert policy[0] == "default-src 'self'"
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert "require-trusted-types-for 'script'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"
    assert '<section aria-labelledby="matrix-title" id="matrix-section">' in page
    version = dashboard.assets()["app.js"].version
    assert f'<script defer src="/static/app.js?v={version}"></script>' in page


async def test_the_page_needs_no_other_origin(served: Collector) -> None:
    async with served.client.get("/") as r:
        urls = references(await r.text())
    assert {"/static/style.css", "/static/app.js", "/static/favicon.svg"} <= {
        u.split("?")[0] for u in urls
    }
    for url in urls:  # the page's own paths, or a fragment of itself
        assert url.startswith(("/", "#")) and not url.startswith("//"), url
    for name in ("app.js", "style.css"):
        body = dashboard.assets()[name].body.decode()
        assert not re.search(r"https?:|@import|url\(", body), name


def test_the_script_builds_no_markup_from_strings() -> None:
    script = dashboard.assets()["app.js"].body.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
async def test_static_files_have_their_content_type_and_cache(
    served: Collector, name: str, content_type: str
) -> None:
    asset = dashboard.assets()[name]
    async with served.client.get(f"/static/{name}", params={"v": asset.version}) as r:
        assert r.status == 200
        assert (r.content_type, r.charset) == (content_type, "utf-8")
        assert await r.read() == asset.body
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["Content-Security-Policy"] == dashboard.CSP
    async with served.client.get(f"/static/{name}") as r:  # unversioned: always revalidated
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-cache"
    async with served.client.get(f"/static/{name}", params={"v": "stale"}) as r:
        assert r.headers["Cache-Control"] == "no-cache"


async def test_a_held_version_is_not_sent_again(served: Collector) -> None:
    etag = dashboard.assets()["style.css"].etag
    async with served.client.get("/static/style.css", headers={"If-None-Match": etag}) as r:
        assert r.status == 304
        assert await r.read() == b""
        assert r.headers["ETag"] == etag
    async with served.client.get("/static/style.css", headers={"If-None-Match": '"other"'}) as r:
        assert r.status == 200


@pytest.mark.parametrize("name", ["missing.js", "index.html", "app.py", "APP.JS"])
async def test_an_unknown_static_name_is_a_json_404(served: Collector, name: str) -> None:
    async with served.client.get(f"/static/{name}") as r:
        assert r.status == 404
        assert r.content_type == "application/json"
        assert await r.json() == {"error": f"/static/{name}: no such file"}


TRAVERSALS = [
    "..%2Fapp.py",
    "%2e%2e%2fapp.py",
    "..%2F..%2Fpyproject.toml",
    "..%5Capp.py",
    "..",
    "%2e%2e",
    "app.js%00",
    "../app.py",
    "web%2Fapp.js",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
async def test_a_path_out_of_the_web_directory_is_refused(served: Collector, raw: str) -> None:
    url = yarl.URL(f"{served.client.make_url('/')}static/{raw}", encoded=True)
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        body = await r.read()
        assert r.status == 404, body
        assert r.content_type == "application/json"
    assert set(json.loads(body)) == {"error"}
    assert b"import" not in body and b"[project]" not in body and b"use strict" not in body
