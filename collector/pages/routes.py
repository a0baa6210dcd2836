"""The dashboard's pages and the evidence package: aiohttp handlers, rendered with Jinja2.

Every page is a shareable URL: its view and filters are query parameters (checked as the API's
are: unknown, repeated or malformed is a 400 naming it), and its links keep the language.
"""

from __future__ import annotations

import datetime
import functools
import re
import urllib.parse
from typing import Any

import jinja2
from aiohttp import web

from collector import dashboard, evidence, flag_diagnostics, handlers
from collector.census import queries as census_queries
from collector.pages import i18n, reads, views
from collector.store import filters

LANG = filters.Filter("lang", filters.TEXT, "language", "fr", i18n.LANGS, test=None)
DAYS = filters.Filter("days", filters.COUNT, "days shown", 14, bounds=(1, 90), test=None)
OVERVIEW = (LANG, filters.CATEGORY)
TIMELINE = (LANG, filters.SERVICE, filters.NETWORK, DAYS)
COLLATERAL = (LANG, filters.ASN_, filters.NETWORK)
DETAIL = (LANG,)
FLAG_ID = re.compile(r"[0-9a-f]{32}")
RECORD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("collector", "templates"),
        autoescape=True,  # every value from a probe becomes text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["network_label"] = views.network_label
    env.globals["static"] = lambda name: f"/static/{name}?v={dashboard.assets()[name].version}"
    return env


def _page(request: web.Request, template: str, lang: str, **values: Any) -> web.Response:
    def link(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v is not None} | {"lang": lang}
        return f"{path}?{urllib.parse.urlencode(query)}"

    other = "en" if lang == "fr" else "fr"
    here = dict(request.query) | {"lang": other}
    body = (
        environment()
        .get_template(template)
        .render(
            t=i18n.translator(lang),
            lang=lang,
            link=link,
            switch=f"{request.path}?{urllib.parse.urlencode(here)}",
            **values,
        )
    )
    headers = {**dashboard.SECURITY_HEADERS, "Cache-Control": "no-cache", "Vary": "Accept-Language"}
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)


def _lang(request: web.Request, chosen: dict[str, Any]) -> str:
    return i18n.choose(chosen.get("lang"), request.headers.get("Accept-Language", "")[:1024])


def _path_lane(lane_of: Any) -> Any:
    """A flag of a public resolver path in a lane of its own, named after the path (the
    network's own resolver's flags keep the plain lane)."""
    return lambda f: lane_of(f) if f["resolver"] == "isp" else f"{lane_of(f)} · {f['resolver']}"


def _flag_link(lang: str) -> Any:
    return lambda f: f"/flags/{f['id']}?lang={lang}"


async def _read(request: web.Request, fn: Any, *args: Any) -> Any:
    """Run a store method (or a Findings query) in a worker thread; 503 when it fails."""
    state = request.app[handlers.STATE]
    if state.store is None:
        raise handlers.Problem(503, "this collector has no database")
    return await handlers.store_call(state, fn, *args)


async def _sql(request: web.Request, fn: Any, *args: Any) -> Any:
    """Run ``fn(conn, *args)`` (collector/pages/reads.py) on a read connection."""
    return await _read(request, request.app[handlers.STATE].store.read, fn, *args)


def _watched(state: Any) -> list[views.Service]:
    if state.watchlist is None:
        return []
    return [views.Service(s.id, s.name, s.category) for s in state.watchlist.services]


async def overview(request: web.Request) -> web.Response:
    """The headline (what is blocked now, per network) and the services x networks matrix."""
    state = request.app[handlers.STATE]
    chosen = handlers.checked_params(request.query, OVERVIEW)
    lang = _lang(request, chosen)
    await state.judged()
    now = datetime.datetime.now(datetime.UTC)
    # what each network blocks: its own resolver's flags (a public path's are on their flag pages)
    open_flags = await _read(
        request, functools.partial(state.findings.query_flags, state="open", resolver="isp")
    )
    looks = await _sql(request, reads.looks, now)
    census = await census_numbers(request)
    networks = views.networks_of(open_flags, looks)
    every = views.services_of(_watched(state), open_flags, looks)
    services = (
        [s for s in every if s.category == chosen["category"]] if chosen.get("category") else every
    )
    rows = views.matrix(services, networks, open_flags, looks, _flag_link(lang))
    return _page(
        request,
        "overview.html",
        lang,
        headlines=views.headlines(
            sorted({*networks, *census}, key=lambda n: ((n[1] or "").lower(), n[0] or 0)),
            open_flags,
            census,
        ),
        networks=networks,
        rows=rows,
        categories=sorted({s.category for s in every}),
        category=chosen.get("category"),
        generated_at=views.rfc3339(now),
    )


async def census_numbers(request: web.Request) -> dict[views.Network, tuple[int, int]]:
    """Per network: (legal domains unreachable, addresses blocked), from the census as the
    metrics' refresh last counted it (every 30 s: a count over a million names is no page's
    work), counted now only before the first refresh."""
    state = request.app[handlers.STATE]
    counts = state.census_counts
    if counts is None:
        await state.census_judged()
        counts = await _sql(request, census_queries.network_counts)
        state.census_counts = counts
    return {(asn, network): (domains, blocked) for asn, network, blocked, domains in counts}


async def timeline(request: web.Request) -> web.Response:
    """Blocked intervals over the last ``days`` days, per network (for a service), per service
    (for a network), or per (service, network)."""
    state = request.app[handlers.STATE]
    chosen = handlers.checked_params(request.query, TIMELINE)
    lang = _lang(request, chosen)
    days = chosen.get("days") or 14
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=days)
    await state.judged()
    wanted = {k: chosen[k] for k in ("service", "network") if chosen.get(k)}
    found = await _read(
        request, functools.partial(state.findings.query_flags, since=start, **wanted)
    )
    if chosen.get("service"):
        lane_of = lambda f: views.network_label((f["asn"], f["network"]))  # noqa: E731
    elif chosen.get("network"):
        lane_of = lambda f: f["service"]  # noqa: E731
    else:
        lane_of = lambda f: f"{f['service']} · {views.network_label((f['asn'], f['network']))}"  # noqa: E731
    drawn = views.timeline(found, start, now, _path_lane(lane_of), _flag_link(lang))
    return _page(
        request,
        "timeline.html",
        lang,
        drawn=drawn,
        chosen=chosen,
        days=days,
        services=[s.id for s in _watched(state)],
        start=views.rfc3339(start),
        end=views.rfc3339(now),
    )


async def collateral(request: web.Request) -> web.Response:
    """Each blocked address, the networks that block it, and what sits behind it."""
    state = request.app[handlers.STATE]
    chosen = handlers.checked_params(request.query, COLLATERAL)
    lang = _lang(request, chosen)
    await state.judged()
    wanted = {k: v for k, v in chosen.items() if k != "lang"}
    found = await _read(request, functools.partial(state.findings.query_collateral, **wanted))
    by_ip: dict[str, dict[str, Any]] = {}
    for item in found:
        entry = by_ip.setdefault(item["ip"], {"ip": item["ip"], "networks": [], "services": set()})
        entry["networks"].append((item["asn"], item["network"], item["first_seen"]))
        entry["services"].update(item["services"])
    await state.census_judged()
    census = await _sql(request, census_queries.addresses, {**wanted, "state": "open"})
    for item in census:  # the census's blocked addresses, with the indexed domains behind them
        entry = by_ip.setdefault(item["ip"], {"ip": item["ip"], "networks": [], "services": set()})
        seen = {(asn, network) for asn, network, _ in entry["networks"]}
        if (item["asn"], item["network"]) not in seen:
            entry["networks"].append((item["asn"], item["network"], item["first_seen"]))
        entry["services"].update(item["services"])
        entry["domains"] = item["collateral_domains"]
        entry["intended"] = item["intended_domains"]
    addresses = sorted(
        by_ip.values(), key=lambda e: (-e.get("domains", 0), -len(e["services"]), e["ip"])
    )
    return _page(request, "collateral.html", lang, addresses=addresses, chosen=chosen)


async def flag_page(request: web.Request) -> web.Response:
    """A flag with its history and the records it rests on, each step beside the control."""
    state = request.app[handlers.STATE]
    chosen = handlers.checked_params(request.query, DETAIL)
    lang = _lang(request, chosen)
    fid = _flag_id(request)
    await state.judged()
    flag, history = await _flag(request, fid)
    records = await _sql(request, reads.records, flag["evidence"])
    diagnosed = flag_diagnostics.of_records(records)
    return _page(
        request, "flag.html", lang, flag=flag, history=history, records=records, diag=diagnosed
    )


async def measurement_page(request: web.Request) -> web.Response:
    """One record: every step, the control beside it, the verdict and the fingerprint."""
    chosen = handlers.checked_params(request.query, DETAIL)
    lang = _lang(request, chosen)
    rid = request.match_info["record_id"]
    if not RECORD_ID.fullmatch(rid):
        raise handlers.Problem(400, f"record id: {rid[:64]!r} is not a record id (a UUID)")
    found = await _sql(request, reads.records, [rid])
    if not found:
        raise handlers.Problem(404, f"no record {rid}")
    return _page(request, "measurement.html", lang, m=found[0])


def _flag_id(request: web.Request) -> str:
    fid = request.match_info["flag_id"]
    if not FLAG_ID.fullmatch(fid):
        raise handlers.Problem(400, f"flag id: {fid[:64]!r} is not a flag id (32 hex digits)")
    return fid


async def _flag(request: web.Request, fid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    found = await _sql(request, reads.flag, fid)
    if found is None:
        raise handlers.Problem(404, f"no flag {fid}")
    flag, history = found
    return flag, history


async def _key(request: web.Request) -> Any:
    state = request.app[handlers.STATE]
    secret = await _read(request, state.store.key, evidence.KEY_NAME)
    return evidence.signing_key(secret)


async def get_evidence(request: web.Request) -> web.Response:
    """The flag's evidence package: a signed zip (collector/evidence.py)."""
    state = request.app[handlers.STATE]
    handlers.checked_params(request.query, ())
    fid = _flag_id(request)
    await state.judged()
    flag, history = await _flag(request, fid)
    records = await _sql(request, reads.records, flag["evidence"])
    flag = {**flag, "diagnostics": flag_diagnostics.of_records(records)}  # as the API shows it
    key = await _key(request)
    key_url = str(request.url.with_path("/api/v1/evidence/key").with_query(None))
    now = datetime.datetime.now(datetime.UTC)
    body = evidence.package(flag, history, records, key, key_url, now)
    name = f"surblocage-evidence-{fid}.zip"
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_evidence_key(request: web.Request) -> web.Response:
    """The public half of the key that signs evidence packages."""
    handlers.checked_params(request.query, ())
    key = await _key(request)
    return web.json_response({"algorithm": "Ed25519", "public_key_pem": evidence.public_pem(key)})
