"""The HTTP step: one GET over a connection pinned to one address, redirects not followed.

The URL's host is resolved to ``spec.ip`` only (no hidden re-resolution through the system
resolver); SNI and Host are the URL's host. probe/flow.py follows redirects itself, measuring
each new host through the tested resolver. The body is read up to ``body_cap_bytes`` to stay
light on a volunteer's line.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass

import aiohttp
import aiohttp.abc
import yarl

from probe import failures
from probe.record import HTTPResult

# headers that help tell a block page, a CDN or a cache apart; set-cookie is never kept
HEADERS = (
    "server", "content-type", "content-length", "location", "via", "x-cache", "cf-ray",
    "cf-cache-status", "x-served-by",
)  # fmt: skip
TITLE_MAX_CHARS = 200
BODY_HEAD_CHARS = 4096
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class HTTPSpec:
    url: str
    ip: str
    timeout_seconds: float = 10.0
    ca_file: str | None = None
    body_cap_bytes: int = 524288
    user_agent: str = "surblocage/0.1"


@dataclass(frozen=True)
class _Body:
    data: bytes
    truncated: bool


class _PinnedResolver(aiohttp.abc.AbstractResolver):
    """Resolve the URL's host to the one address under test, and nothing else."""

    def __init__(self, host: str, ip: str) -> None:
        self.host = host.lower()
        self.ip = ip
        self.family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        if host.lower() != self.host:
            raise OSError(f"{host} is not the pinned host {self.host}")
        return [
            {"hostname": host, "host": self.ip, "port": port, "family": self.family,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def measure(spec: HTTPSpec) -> HTTPResult:
    """GET ``spec.url`` from ``spec.ip``; never raise on a network failure."""
    # built outside the try: an unreadable ca_file is a configuration error, not a measurement
    context = _context(spec.ca_file)
    # the host as aiohttp will ask for it (IDNA-encoded), to pin it and nothing else
    host = yarl.URL(spec.url).raw_host or ""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            status, headers, body = await _get(spec, host, context)
    except failures.NETWORK_ERRORS as exc:
        return HTTPResult(url=spec.url, failure=failures.classify(exc), ms=_ms(started), ip=spec.ip)
    return _result(spec, _ms(started), status, headers, body)


async def _get(
    spec: HTTPSpec, host: str, context: ssl.SSLContext
) -> tuple[int, dict[str, str], _Body]:
    """Send the one request and read the status, the selected headers and the capped body."""
    connector = aiohttp.TCPConnector(
        resolver=_PinnedResolver(host, spec.ip), ssl=context, use_dns_cache=False,
        force_close=True, limit=1,
    )  # fmt: skip
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),  # asyncio.timeout in measure() owns it
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # never through a proxy from the environment: the path is the point
    ) as session:
        async with session.get(
            spec.url, allow_redirects=False, headers={"User-Agent": spec.user_agent}
        ) as response:
            headers = {
                name: ", ".join(response.headers.getall(name))
                for name in HEADERS
                if name in response.headers
            }
            return response.status, headers, await _read_capped(response, spec.body_cap_bytes)


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> _Body:
    """Read at most ``cap`` bytes of the body, and one more to know whether there was more."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await response.content.read(cap + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return _Body(data[:cap], len(data) > cap)


def _result(
    spec: HTTPSpec, ms: float, status: int, headers: dict[str, str], body: _Body
) -> HTTPResult:
    text = body.data.decode("utf-8", errors="replace")
    return HTTPResult(
        url=spec.url, failure=None, ms=ms, status=status, body_length=len(body.data),
        body_sha256=hashlib.sha256(body.data).hexdigest(), title=title_of(text),
        headers=headers, ip=spec.ip, body_truncated=body.truncated,
        body_head=text[:BODY_HEAD_CHARS],
    )  # fmt: skip


def title_of(text: str) -> str | None:
    """Return the first <title>, unescaped and whitespace-collapsed, or None if there is none."""
    match = _TITLE.search(text)
    if match is None:
        return None
    return " ".join(html.unescape(match.group(1)).split())[:TITLE_MAX_CHARS]


@functools.lru_cache(maxsize=8)
def _context(ca_file: str | None) -> ssl.SSLContext:
    """Return a verifying client context: the system store plus ``ca_file``."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
