"""A minimal asyncio probe doing the probe's network steps and nothing else: the CPU reference.

usage: python -m benchmarks.minimal_probe [--uvloop] --resolver IP --ca-file FILE
       [--concurrency 32] URL...

Per target, what `surblocage-probe check` does on the wire for an honest HTTPS target: A and
AAAA queries sent at once to the resolver over UDP (dnspython), a TCP connection to the first
IPv4 answer, a TLS handshake with the server's certificate kept (DER), a GET and the whole body
read (Content-Length or to the end). No record, no verdict, no fingerprints: one short JSON line
a target (its status, body and certificate sizes, ms), in input order, so the benchmark can tell
it did the work. What it costs over this is the probe's own layers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype

TIMEOUT_SECONDS = 15.0


async def resolve(name: str, resolver: str) -> list[str]:
    """Ask A and AAAA at once; return the IPv4 answers (the first one is connected to)."""
    queries = [dns.message.make_query(name, t) for t in (dns.rdatatype.A, dns.rdatatype.AAAA)]
    replies = await asyncio.gather(
        *(dns.asyncquery.udp(q, resolver, timeout=TIMEOUT_SECONDS) for q in queries)
    )
    return [
        rr.address for rrset in replies[0].answer if rrset.rdtype == dns.rdatatype.A for rr in rrset
    ]


async def fetch(url: str, resolver: str, context: ssl.SSLContext) -> dict[str, Any]:
    """DNS, TCP, TLS with the certificate kept, GET and the body read, for one URL."""
    started = time.perf_counter()
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    addresses = await resolve(host, resolver)
    reader, writer = await asyncio.open_connection(
        addresses[0], parts.port or 443, ssl=context, server_hostname=host
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert(binary_form=True) if ssl_object else b""
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        body = await (reader.readexactly(length) if length is not None else reader.read())
    finally:
        writer.close()
    ms = round((time.perf_counter() - started) * 1000)
    return {"url": url, "status": status, "body_bytes": len(body), "cert_bytes": len(cert),
            "ms": ms}  # fmt: skip


async def run(urls: Sequence[str], resolver: str, ca_file: str, concurrency: int) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> dict[str, Any]:
        async with gate, asyncio.timeout(TIMEOUT_SECONDS):
            return await fetch(url, resolver, context)

    for found in await asyncio.gather(*(one(u) for u in urls)):
        print(json.dumps(found))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.minimal_probe", description=__doc__)
    p.add_argument("--resolver", required=True)
    p.add_argument("--ca-file", required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    p.add_argument("urls", nargs="+")
    args = p.parse_args(argv)
    coro = run(args.urls, args.resolver, args.ca_file, args.concurrency)
    if args.uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
