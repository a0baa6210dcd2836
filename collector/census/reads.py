"""The census's read routes (docs/spec.md "The census"): parse, read in a worker thread, answer.

Public, like the flags: the census is a published finding. Every parameter is parsed by
collector/store/filters.py (400 naming it); the work of a request is bounded by the filters: a
page of at most 1,000 domains, at most ``filters.MAX_BUCKETS`` buckets.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from typing import Any

from aiohttp import web

from collector import handlers
from collector.census import history, queries
from collector.store import filters

DEFAULT_DOMAINS = 100  # domains a page without ``limit``


async def _read(request: web.Request, fn: Any, *args: Any) -> Any:
    """Run ``fn(conn, *args)`` on the store in a worker thread, after the address judge."""
    state = request.app[handlers.STATE]
    await state.census_judged()
    return await handlers.store_call(state, functools.partial(state.store.read, fn, *args))


def _json(body: Any) -> web.Response:
    return web.Response(body=handlers.encode_json(body), content_type="application/json")


async def get_census(request: web.Request) -> web.Response:
    """What is blocked now, per network."""
    chosen = handlers.checked_params(request.query, filters.CENSUS_FILTERS)
    found = await _read(request, queries.census, chosen)
    return _json({"networks": found, "generated_at": _now_text()})


async def get_addresses(request: web.Request) -> web.Response:
    """One item an address flag's (network, address), with the domains on the address."""
    chosen = handlers.checked_params(request.query, filters.CENSUS_ADDRESS_FILTERS)
    return _json({"addresses": await _read(request, queries.addresses, chosen)})


async def get_address(request: web.Request) -> web.Response:
    """One address: its domains a page at a time, and its flags on every network."""
    ip = canonical_ip(request.match_info["ip"])
    chosen = handlers.checked_params(request.query, filters.DOMAIN_PAGING)
    cursor = chosen.get("cursor")
    try:
        if cursor is not None:
            queries.decode_cursor(cursor)
    except ValueError as e:
        raise handlers.Problem(400, str(e)) from None
    limit = chosen.get("limit", DEFAULT_DOMAINS)
    found = await _read(request, queries.address, ip, limit, cursor)
    if found is None:
        raise handlers.Problem(404, f"ip: {ip} is not known to the census")
    return _json(found)


async def get_history(request: web.Request) -> web.Response:
    """The census over time, per network, in buckets of an hour or a day."""
    chosen = handlers.checked_params(request.query, filters.HISTORY_FILTERS)
    step = chosen.pop("step", "hour")
    since, until = chosen.pop("since", None), chosen.pop("until", None)
    try:
        b = history.buckets(step, since, until, _now(), filters.MAX_BUCKETS)
    except ValueError as e:
        raise handlers.Problem(400, str(e)) from None
    series = await _read(request, queries.census_history, chosen, b)
    return _json({"step": step, "series": series})


def canonical_ip(text: str) -> str:
    """An address as the census keeps it (its canonical spelling); Problem(400) if it is not
    one."""
    if len(text) > 45:  # the longest textual IPv6 address (with an IPv4 tail)
        raise handlers.Problem(400, "ip: not an IP address")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise handlers.Problem(400, "ip: not an IP address") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _now_text() -> str:
    return queries.rfc3339(_now())


ROUTES = [
    ("GET", "/api/v1/census", get_census),
    ("GET", "/api/v1/census/addresses", get_addresses),
    ("GET", "/api/v1/census/addresses/{ip}", get_address),
    ("GET", "/api/v1/census/history", get_history),
]
