"""Lab transparent HTTP proxy: an ISP's DNAT target that injects a block page by Host name.

usage: python -m tests.lab.servers.tproxy CONFIG.json
config: {"listen": ip, "port": n, "block": [host, ...], "isp": letter}. Connections arrive
DNATed from the probe LAN; a request whose Host is blocked gets a 200 block page, any other is
relayed byte for byte to the original destination (SO_ORIGINAL_DST), so the origin sees the
router as the client. Prints READY once listening.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from typing import Any

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
HEAD_LIMIT = 65536


def original_dst(sock: socket.socket) -> tuple[str, int]:
    """Return the address the client meant to reach before the ISP's DNAT."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    (port,) = struct.unpack("!H", raw[2:4])
    return socket.inet_ntoa(raw[4:8]), port


def host_of(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            return value.strip().decode("latin-1").split(":")[0].lower()
    return ""


def block_page(host: str, isp: str) -> bytes:
    body = (
        f"<html><head><title>Blocked by ISP {isp}</title></head><body>"
        f"<p>BLOCKED by ISP {isp}: access to {host} is restricted by court order.</p>"
        "</body></html>\n"
    ).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\nX-Lab-Proxy: isp-{isp}\r\n\r\n"
    ).encode()
    return head + body


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # either side reset: the other side is closed below
    finally:
        writer.close()


class Proxy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.block = {h.lower() for h in config["block"]}
        self.isp = config["isp"]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        host = host_of(head)
        if host in self.block:
            writer.write(block_page(host, self.isp))
            await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *original_dst(writer.get_extra_info("socket"))
            )
        except OSError:
            writer.close()
            return
        up_writer.write(head)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def serve(config: dict[str, Any]) -> None:
    proxy = Proxy(config)
    server = await asyncio.start_server(
        proxy.handle, config["listen"], config["port"], limit=HEAD_LIMIT
    )
    print(f"READY tproxy on {config['listen']}:{config['port']}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(serve(json.load(f)))
