"""The dashboard's pages over HTTP, on a collector filled with records submitted over HTTP
(tests/browser/scene.py): what each page says must be what the API says."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from collector import evidence
from collector.pages import i18n
from tests.browser import dom, scene
from tests.collector.harness import Collector, running


@pytest.fixture
async def filled(sqlite_url: str) -> AsyncIterator[Collector]:
    async with running(sqlite_url) as c:
        await scene.populate(c)
        yield c


async def page(c: Collector, path: str, **headers: str) -> dom.Node:
    async with c.client.get(path, headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "text/html"
        return dom.parse(await r.text())


async def api(c: Collector, path: str) -> Any:
    async with c.client.get(path) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def label(asn: int | None, network: str | None) -> str:
    return f"{network} (AS{asn})"


async def test_every_open_flag_is_a_blocked_cell_linking_to_it(filled: Collector) -> None:
    flags = (await api(filled, "/api/v1/flags?state=open"))["flags"]
    assert len(flags) >= 4
    shown = await page(filled, "/?lang=en")
    cells = {
        (tr.attrs["data-service"], td.attrs["data-network"]): td
        for tr in shown.by_id("matrix").find("tr")
        if tr.attrs.get("data-service")
        for td in tr.find("td", "cell")
    }
    blocked = {k for k, td in cells.items() if td.attrs["data-state"] == "blocked"}
    assert blocked == {(f["service"], label(f["asn"], f["network"])) for f in flags}
    for f in flags:
        td = cells[(f["service"], label(f["asn"], f["network"]))]
        [a] = td.find("a")
        assert a.attrs["href"] == f"/flags/{f['id']}?lang=en"
        assert f["method"] in a.text()
    # SFR lifted its block of Deezer: reachable again, not blocked
    assert cells[("deezer", "SFR (AS15557)")].attrs["data-state"] == "ok"
    assert cells[("ligue1", "Bouygues (AS5410)")].attrs["data-state"] == "down"


async def test_the_headline_counts_what_the_api_counts(filled: Collector) -> None:
    flags = (await api(filled, "/api/v1/flags?state=open"))["flags"]
    per: dict[str, set[str]] = {}
    for f in flags:
        per.setdefault(label(f["asn"], f["network"]), set()).add(f["service"])
    shown = await page(filled, "/?lang=en")
    cards = {
        li.attrs["data-network"]: int(
            next(s for s in li.find("strong") if s.attrs.get("data-count") == "services").text()
        )
        for li in shown.by_id("headline").find("li", "card")
    }
    assert cards == {n: len(s) for n, s in per.items()}


async def test_french_by_default_english_on_request(filled: Collector) -> None:
    fr = await page(filled, "/")
    assert fr.find("html")[0].attrs["lang"] == "fr"
    assert "services légaux bloqués" in fr.text()
    en = await page(filled, "/", **{"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    assert en.find("html")[0].attrs["lang"] == "en"
    assert "legal services blocked" in en.text()
    assert (await page(filled, "/?lang=fr", **{"Accept-Language": "en"})).find("html")[0].attrs[
        "lang"
    ] == "fr"
    switch = en.by_id("lang-switch")
    assert switch.attrs["href"] == "/?lang=fr"


def test_both_languages_have_every_word() -> None:
    assert set(i18n.MESSAGES["fr"]) == set(i18n.MESSAGES["en"])
    assert i18n.choose(None, "de-DE, en;q=0.4, fr;q=0.8") == "fr"
    assert i18n.choose(None, "en-US;q=0.9, fr;q=bad") == "en"
    assert i18n.choose(None, "") == i18n.DEFAULT


async def test_a_hostile_network_name_stays_text(filled: Collector) -> None:
    async with filled.client.get("/?lang=en") as r:
        markup = await r.text()
    assert "<img src=x" not in markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup


async def test_the_timeline_shows_a_lifted_block_as_a_closed_interval(filled: Collector) -> None:
    [closed] = (await api(filled, "/api/v1/flags?state=closed&service=deezer"))["flags"]
    shown = await page(filled, "/timeline?service=deezer&lang=en")
    [lane] = [d for d in shown.find("div", "lane") if d.attrs["data-lane"] == "SFR (AS15557)"]
    [bar] = lane.find("rect", "bar")
    assert "closed" in bar.attrs["class"].split()
    assert (bar.attrs["data-start"], bar.attrs["data-end"]) == (
        closed["first_seen"],
        closed["closed_at"],
    )
    assert float(bar.attrs["width"]) > 0
    [item] = lane.find("li")
    assert item.attrs["data-state"] == "closed" and "lifted" in item.text()
    assert shown.find("rect", "evening"), "match evenings are shaded"


async def test_the_collateral_view_lists_every_service_behind_a_blocked_address(
    filled: Collector,
) -> None:
    expected = {
        a["ip"]: set(a["services"]) for a in (await api(filled, "/api/v1/collateral"))["addresses"]
    }
    assert expected[scene.SHARED] == {"mycanal", "beinsports", "deezer"}
    shown = await page(filled, "/collateral?lang=en")
    rows = {
        tr.attrs["data-ip"]: tr
        for tr in shown.by_id("collateral").find("tr")
        if tr.attrs.get("data-ip")
    }
    assert set(rows) == set(expected)
    services = rows[scene.SHARED].find("td")[1].text()
    assert {s.strip() for s in services.split(",")} == expected[scene.SHARED]
    assert "Free (AS12322)" in rows[scene.SHARED].text()


async def test_a_flags_page_lists_its_records_and_each_record_its_control(
    filled: Collector,
) -> None:
    [f] = (await api(filled, "/api/v1/flags?state=open&network=Orange"))["flags"]
    shown = await page(filled, f"/flags/{f['id']}?lang=en")
    links = [a.attrs["href"] for a in shown.by_id("evidence").find("a")]
    assert links == [f"/measurements/{rid}?lang=en" for rid in f["evidence"]]
    assert shown.by_id("evidence-download").attrs["href"] == f"/api/v1/flags/{f['id']}/evidence"
    record = await page(filled, links[0])
    assert "blocked / dns" in record.by_id("m-verdict").text()
    assert "127.0.0.1" in record.by_id("probe-side").text()
    assert scene.OWN["mycanal"] in record.by_id("control-side").text()


@pytest.mark.parametrize(
    ("path", "status", "names"),
    [
        ("/?lang=de", 400, "lang"),
        ("/?lang=en&lang=fr", 400, "lang"),
        ("/?colour=red", 400, "colour"),
        ("/timeline?days=365", 400, "days"),
        ("/timeline?days=x", 400, "days"),
        ("/flags/nothex", 400, "flag id"),
        ("/flags/" + "0" * 32, 404, "no flag"),
        ("/measurements/123", 400, "record id"),
        ("/measurements/00000000-0000-4000-8000-000000000000", 404, "no record"),
        ("/api/v1/flags/" + "f" * 32 + "/evidence", 404, "no flag"),
        ("/api/v1/evidence/key?x=1", 400, "x"),
    ],
)
async def test_bad_requests_are_json_4xx_naming_the_fault(
    filled: Collector, path: str, status: int, names: str
) -> None:
    async with filled.client.get(path) as r:
        assert r.status == status
        assert r.content_type == "application/json"
        assert names in (await r.json())["error"]


async def test_the_evidence_package_checks_against_the_collectors_key(filled: Collector) -> None:
    [f] = (await api(filled, "/api/v1/flags?state=open&network=Free&service=deezer"))["flags"]
    key = await api(filled, "/api/v1/evidence/key")
    assert key["algorithm"] == "Ed25519"
    async with filled.client.get(f"/api/v1/flags/{f['id']}/evidence") as r:
        assert r.status == 200 and r.content_type == "application/zip"
        assert f["id"] in r.headers["Content-Disposition"]
        zipped = await r.read()
    manifest = evidence.verify(zipped, key["public_key_pem"])
    assert manifest["flag"] == f["id"]
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        names = set(z.namelist())
        assert {f"records/{rid}.json" for rid in f["evidence"]} == {
            n for n in names if n.startswith("records/")
        }
        assert "README.txt" in names and "history.json" in names
        # the flag as the API shows it, with what the probes' diagnostics found
        assert json.loads(z.read("flag.json"))["diagnostics"] == f["diagnostics"]
        assert f["diagnostics"]["location"]["probes"] == 2
    # a second package is signed by the same key (one per database, not per request)
    assert (await api(filled, "/api/v1/evidence/key")) == key


def test_a_changed_package_does_not_check() -> None:
    import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    flag = {"id": "a" * 32, "evidence": ["r1"]}
    zipped = evidence.package(
        flag, [flag], [{"id": "r1", "x": 1}], key, "http://c/", datetime.datetime.now(datetime.UTC)
    )
    pem = evidence.public_pem(key)
    evidence.verify(zipped, pem)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped)) as z, zipfile.ZipFile(out, "w") as w:
        for n in z.namelist():
            body = z.read(n)
            w.writestr(n, body.replace(b'"x": 1', b'"x": 2') if n == "records/r1.json" else body)
    with pytest.raises(evidence.BadPackage, match=re.escape("records/r1.json")):
        evidence.verify(out.getvalue(), pem)
    other = evidence.public_pem(Ed25519PrivateKey.generate())
    with pytest.raises(evidence.BadPackage, match=re.escape("manifest.sig")):
        evidence.verify(zipped, other)
