"""Lab encrypted resolver: DNS over TLS (:853) and over HTTPS (:443, POST /dns-query), forwarding
each query over UDP to an upstream resolver (the lab's honest public one).

usage: python -m tests.lab.servers.secured CONFIG.json   (prints READY once both listen)
config: {"listen": ip, "upstream": ip, "cert": PEM with key}
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import sys
from typing import Any

import dns.asyncquery
import dns.message
from aiohttp import web


async def forward(wire: bytes, upstream: str) -> bytes:
    query = dns.message.from_wire(wire)
    reply = await dns.asyncquery.udp(query, upstream, timeout=3)
    return bytes(reply.to_wire())


async def serve_dot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: str):
    try:
        while True:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            wire = await forward(await reader.readexactly(size), upstream)
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, dns.exception.DNSException):
        pass
    finally:
        writer.close()


async def main(config: dict[str, Any]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["cert"])
    upstream = config["upstream"]

    async def answer(request: web.Request) -> web.Response:
        if request.content_type != "application/dns-message":
            return web.Response(status=415, text="application/dns-message only")
        wire = await forward(await request.read(), upstream)
        return web.Response(body=wire, content_type="application/dns-message")

    app = web.Application()
    app.router.add_post("/dns-query", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config["listen"], 443, ssl_context=context).start()
    await asyncio.start_server(
        lambda r, w: serve_dot(r, w, upstream), config["listen"], 853, ssl=context
    )
    print(f"READY secured DoT :853 and DoH :443 on {config['listen']}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(main(json.load(f)))
