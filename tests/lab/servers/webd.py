"""Lab web server (aiohttp): virtual hosts on many addresses, HTTP and HTTPS, one process.

usage: python -m tests.lab.servers.webd CONFIG.json   (prints READY once every socket listens)
config: {"listeners": [{"addr", "port", "cert": pem path or null, "default": behaviour}],
         "sites": {"<host> <path>": behaviour}, "probe_networks": [cidr, ...]}
behaviour: status, body ("{host}" is replaced), title, location, delay_seconds, body_bytes,
probe_status (answered instead of status when the client is in a probe network).
Every answer carries X-Lab-Client (the peer address the server saw) and X-Lab-Server.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import ssl
import sys
from typing import Any

from aiohttp import web

DEFAULT = {"status": 200, "body": "hello from {host}"}


class Vhosts:
    """Pick the behaviour for a request: by Host and path, else the listener's default."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.sites = config.get("sites", {})
        self.defaults = {
            (_norm(li["addr"]), li["port"]): li.get("default") or DEFAULT
            for li in config["listeners"]
        }
        self.probe_networks = [ipaddress.ip_network(n) for n in config.get("probe_networks", [])]

    def behaviour(self, request: web.Request, host: str) -> dict[str, Any]:
        site = self.sites.get(f"{host} {request.path}")
        if site is not None:
            return site
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        key = (_norm(sockname[0]), sockname[1]) if sockname else None
        return self.defaults.get(key, DEFAULT) if key else DEFAULT

    def from_probe(self, peer: str | None) -> bool:
        if not peer:
            return False
        address = ipaddress.ip_address(peer)
        return any(address in n for n in self.probe_networks)

    async def handle(self, request: web.Request) -> web.Response:
        host = (request.url.host or "").lower()
        b = self.behaviour(request, host)
        await asyncio.sleep(b.get("delay_seconds", 0))
        status = b.get("status", 200)
        if b.get("probe_status") and self.from_probe(request.remote):
            status = b["probe_status"]
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        headers = {
            "X-Lab-Client": request.remote or "",
            "X-Lab-Server": str(sockname and sockname[0]),
        }
        if b.get("location"):
            headers["Location"] = b["location"]
        return web.Response(
            status=status, body=page(b, host), headers=headers, content_type="text/html"
        )


def page(b: dict[str, Any], host: str) -> bytes:
    """Render the HTML body, padded to body_bytes when asked."""
    text = html.escape(b.get("body", DEFAULT["body"]).replace("{host}", host))
    title = html.escape(b.get("title") or text[:60])
    out = f"<html><head><title>{title}</title></head><body><p>{text}</p>".encode()
    size = b.get("body_bytes", 0)
    if size:
        tail = b"</body></html>"
        return out + b"x" * max(0, size - len(out) - len(tail)) + tail
    return out + b"</body></html>\n"


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


async def serve(config: dict[str, Any]) -> None:
    vhosts = Vhosts(config)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", vhosts.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for li in config["listeners"]:
        ctx = None
        if li.get("cert"):
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(li["cert"])
        await web.TCPSite(runner, li["addr"], li["port"], ssl_context=ctx).start()
    print(f"READY webd on {len(config['listeners'])} sockets", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(serve(json.load(f)))
