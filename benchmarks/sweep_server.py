"""The far end of the sweep benchmark, in the lab's internet namespace: one TLS listener for many
addresses, and the address list.

usage: python -m benchmarks.sweep_server LIST_HOST LIST_PORT TLS_PORT COUNT
The TLS server listens on 0.0.0.0:TLS_PORT: with `ip route add local 198.18.0.0/21 dev lo` in
the namespace, every address of that range is this host's, and the one socket answers them all.
GET /api/v1/addresses on LIST_HOST:LIST_PORT lists COUNT of them (198.18.0.1 and up), each with
its own name. Prints "ready" once both listen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import sys
from typing import Any

import trustme
from aiohttp import web

FIRST = ipaddress.ip_address("198.18.0.1")


def addresses(count: int, port: int) -> dict[str, Any]:
    items = [
        {"ip": str(FIRST + i), "port": port, "sni": f"n{i}.bench.example", "reasons": ["shared"],
         "domains": 1}
        for i in range(count)
    ]  # fmt: skip
    return {"addresses": items, "generated_at": "2026-12-06T04:00:00Z"}


async def _tls_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Hold the connection until the client closes (the handshake is done by asyncio)."""
    try:
        while await reader.read(4096):
            pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(list_host: str, list_port: int, tls_port: int, count: int) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("*.bench.example").configure_cert(context)
    server = await asyncio.start_server(_tls_client, "0.0.0.0", tls_port, ssl=context, backlog=1024)
    doc = addresses(count, tls_port)

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(doc)

    app = web.Application()
    app.router.add_get("/api/v1/addresses", listing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, list_host, list_port).start()
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, port, tls_port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(host, port, tls_port, count))
