"""The flow's step map made of fake DNS, TCP, TLS and HTTP steps, for tests at the step map seam.

The connection step does what probe/steps/connection.py does, from tables instead of sockets:
TCP to every address, TLS on those that connected (https), the GET on the first usable one,
within the step's budget. The DNS step hears no second reply.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from probe.flow import Steps
from probe.record import HTTPResult
from probe.steps.connection import ConnectionResult, ConnectionSpec
from probe.steps.http import HTTPSpec
from probe.steps.tcp import TCPSpec
from probe.steps.tls import TLSSpec

Step = Callable[[Any], Awaitable[Any]]


def fake_steps(dns: Step, tcp: Step, tls: Step, http: Step) -> Steps:
    """Return the flow's step map made of the four fakes."""
    return Steps(dns=listening(dns), connection=connection_step(tcp, tls, http), tls=tls)


def listening(dns: Step) -> Step:
    """Return the DNS fake in the flow's shape: its result, and a listen that heard nothing."""

    async def step(spec: Any) -> tuple[Any, asyncio.Future[list[str] | None]]:
        result = await dns(spec)
        heard: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()
        heard.set_result(None)
        return result, heard

    return step


def connection_step(tcp: Step, tls: Step, http: Step) -> Callable[[ConnectionSpec], Awaitable[Any]]:
    """Return a connection step made of the three fakes."""

    async def connection(spec: ConnectionSpec) -> ConnectionResult:
        u = urllib.parse.urlsplit(spec.url)
        host, port = u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
        tcp_results = [await tcp(TCPSpec(ip=ip, port=port)) for ip in spec.ips]
        usable = [t.ip for t in tcp_results if t.failure is None]
        tls_results = []
        if u.scheme == "https":
            tls_results = [await tls(TLSSpec(ip=ip, port=port, sni=host)) for ip in usable]
            usable = [t.ip for t in tls_results if t.failure is None]
        got = None
        if usable and spec.fetch:
            try:  # the step's budget, as the real one keeps it
                async with asyncio.timeout(spec.budget_seconds):
                    got = await http(HTTPSpec(url=spec.url, ip=usable[0]))
            except TimeoutError:
                got = HTTPResult(url=spec.url, failure="generic_timeout_error", ms=1)
        return ConnectionResult(tcp=tuple(tcp_results), tls=tuple(tls_results), http=got)

    return connection
