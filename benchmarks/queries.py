"""Query latency of a running collector: the common research queries, paging, /api/v1/flags.

Each query is asked ``requests`` times, one at a time over one keep-alive connection, with its
parameter varying (service, network, method, time window); latency is to the last byte of the
answer (the body is read, not parsed). Paging follows next_cursor for PAGES pages.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks import figures, records

PAGES = 20
Params = Callable[[int], dict[str, str]]


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def research_queries(now: datetime.datetime) -> dict[str, Params]:
    """Return name -> parameters of request i, for the queries researchers ask most."""
    day = now - datetime.timedelta(days=1)
    week = now - datetime.timedelta(days=7)
    nets = records.NETWORKS
    methods = ("dns", "tcp_ip", "tls")
    return {
        "by service": lambda i: {"service": records.SERVICES[i % 60], "limit": "100"},
        "by asn, last 24 h": lambda i: {
            "asn": str(nets[i % len(nets)][0]), "since": rfc3339(day), "limit": "100"},
        "by status+method": lambda i: {
            "status": "blocked", "method": methods[i % 3], "limit": "100"},
        "asn+status+method, last 7 days": lambda i: {
            "asn": str(nets[i % len(nets)][0]), "status": "blocked", "method": methods[i % 3],
            "since": rfc3339(week), "limit": "100"},
        "service+asn, latest day, 1000": lambda i: {
            "service": records.SERVICES[i % 60], "asn": str(nets[i % len(nets)][0]),
            "since": rfc3339(day), "limit": "1000"},
    }  # fmt: skip


async def timed_get(session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> tuple:
    """Return (milliseconds, status, body) of one GET."""
    t0 = time.perf_counter()
    async with session.get(url, params=params) as r:
        body = await r.read()
    return (time.perf_counter() - t0) * 1000, r.status, body


async def run_query(base: str, params: Params, requests: int) -> tuple[list[float], list[int]]:
    """Ask one query ``requests`` times; return latencies (ms) and items; exit on a non-200."""
    out, items = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(requests):
            ms, status, body = await timed_get(session, f"{base}/api/v1/measurements", params(i))
            if status != 200:
                raise SystemExit(f"{params(i)} answered {status}: {body[:300]!r}")
            out.append(ms)
            items.append(body.count(b'"schema":'))  # one per record, without parsing
    return out, items


async def run_paging(base: str, chains: int) -> tuple[list[float], int]:
    """Follow next_cursor PAGES times for ``chains`` services; return latencies and items seen."""
    out, items = [], 0
    async with aiohttp.ClientSession() as session:
        for i in range(chains):
            params = {"service": records.SERVICES[(7 * i) % 60], "limit": "100"}
            for _ in range(PAGES):
                ms, status, body = await timed_get(session, f"{base}/api/v1/measurements", params)
                if status != 200:
                    raise SystemExit(f"paging answered {status}: {body[:300]!r}")
                out.append(ms)
                page = json.loads(body)
                items += len(page["measurements"])
                if not page["next_cursor"]:
                    break
                params = {**params, "cursor": page["next_cursor"]}
    return out, items


async def run_flags(base: str, requests: int) -> tuple[list[float], int] | None:
    """Time GET /api/v1/flags (all, then by network); None when the route does not exist."""
    out, count = [], 0
    async with aiohttp.ClientSession() as session:
        for i in range(requests):
            params = {} if i % 2 else {"asn": str(records.NETWORKS[i % 8][0])}
            ms, status, body = await timed_get(session, f"{base}/api/v1/flags", params)
            if status == 404:
                return None
            if status != 200:
                raise SystemExit(f"/api/v1/flags answered {status}: {body[:300]!r}")
            out.append(ms)
            count = max(count, len(json.loads(body).get("flags", [])))
    return out, count


def latency_line(name: str, ms: list[float]) -> str:
    return (
        f"   {name:<34} p50 {figures.percentile(ms, 50):7.1f} ms  p99 "
        f"{figures.percentile(ms, 99):7.1f} ms  (n={len(ms)}, max {max(ms):.1f})"
    )


def measure(base: str, requests: int, now: datetime.datetime) -> dict[str, Any]:
    """Run every query against the collector at ``base``; print and return the latencies."""
    found: dict[str, Any] = {}
    for name, params in research_queries(now).items():
        asyncio.run(run_query(base, params, 5))  # warm the connection and the caches a little
        found[name], items = asyncio.run(run_query(base, params, requests))
        per = statistics.median(items)
        print(latency_line(name, found[name]) + f", {per:.0f} items per answer", flush=True)
    pages, seen = asyncio.run(run_paging(base, max(1, requests // PAGES)))
    found["paging"] = pages
    print(latency_line(f"paging by service ({PAGES} pages)", pages) + f", {seen} items")
    flags = asyncio.run(run_flags(base, requests))
    if flags is None:
        print("   /api/v1/flags: the route does not exist in this collector (404)", flush=True)
    else:
        found["flags"] = flags[0]
        print(latency_line(f"/api/v1/flags ({flags[1]} flags)", flags[0]), flush=True)
    return found
