"""DNS over TLS and over HTTPS on loopback, answering from a `DNSServer`'s zones.

The DoH server can also misbehave as a hostile or broken endpoint does (``DoH.mode``): an HTML
page, another content type, a body past a DNS message's size, a body cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.message
from aiohttp import web

from tests.support import dns_server as plain
from tests.support.dns_server import DNSServer


@dataclass
class DoH:
    """A DoH endpoint at ``url``; ``mode`` None answers, else misbehaves (see below)."""

    url: str
    mode: str | None = None  # "html", "type", "oversized", "cut", "status"


@contextlib.asynccontextmanager
async def serving_dot(server: DNSServer, context: ssl.SSLContext) -> AsyncIterator[int]:
    """Serve DoT (RFC 7858: DNS over TCP framing inside TLS) from ``server``'s zones; the port."""
    tcp = await asyncio.start_server(
        lambda r, w: plain._serve_tcp(server, r, w), server.host, 0, ssl=context
    )
    try:
        yield int(tcp.sockets[0].getsockname()[1])
    finally:
        tcp.close()
        await tcp.wait_closed()


@contextlib.asynccontextmanager
async def serving_doh(
    server: DNSServer, context: ssl.SSLContext, hostname: str
) -> AsyncIterator[DoH]:
    """Serve DoH (RFC 8484, POST) at https://HOSTNAME:PORT/dns-query from ``server``'s zones."""
    doh = DoH(url="")

    async def answer(request: web.Request) -> web.StreamResponse:
        query = dns.message.from_wire(await request.read())
        (reply,) = server.reply(query, "tcp")[:1]
        wire = reply.to_wire()
        if doh.mode == "html":
            return web.Response(
                text="<html><title>Blocked</title></html>", content_type="text/html"
            )
        if doh.mode == "type":
            return web.Response(body=wire, content_type="application/octet-stream")
        if doh.mode == "status":
            return web.Response(status=403, body=wire, content_type="application/dns-message")
        if doh.mode == "oversized":
            return web.Response(body=wire + b"\0" * 70000, content_type="application/dns-message")
        if doh.mode == "cut":
            response = web.StreamResponse(headers={"content-type": "application/dns-message"})
            response.content_length = len(wire) + 100
            await response.prepare(request)
            await response.write(wire)
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=wire, content_type="application/dns-message")

    app = web.Application()
    app.router.add_post("/dns-query", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, server.host, 0, ssl_context=context)
    await site.start()
    port = int(runner.addresses[0][1])
    doh.url = f"https://{hostname}:{port}/dns-query"
    try:
        yield doh
    finally:
        await runner.cleanup()
