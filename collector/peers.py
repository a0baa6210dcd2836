"""Who a client is (its address behind trusted proxies, its rate-limit key) and how long and how
many connections it may hold (header timeout, connections per client and in all).

A client's address is used for rate limits, connection counts and one ASN lookup; it is never
stored or logged (collector/auth.py keeps only keyed hashes of it, for a minute).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from probe import addresses

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def rate_key(address: str) -> str:
    """The key a client's limits count under: an IPv4 address itself, an IPv6 address its /64
    (one subscriber line gets a whole /64, so counting per address would not limit it)."""
    prefix = addresses.prefix_of(address, 32, 64)
    if prefix is None:
        return address
    return str(prefix.network_address) if prefix.version == 4 else str(prefix)


def client_address(peer: str, headers: Any, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` itself, unless ``peer`` is a trusted proxy; then the
    right-most hop of ``Forwarded: for=`` (RFC 7239) or ``X-Forwarded-For`` that is not a
    trusted proxy. Headers from any other peer are ignored: anyone can write them."""
    if not trusted or not addresses.within(peer, trusted):
        return peer
    hops = _forwarded_for(headers.getall("Forwarded", []))
    if not hops:
        hops = [h.strip() for v in headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed(hops):
        if not _valid(hop):
            return peer  # a hop the proxies did not write: trust nothing before it
        if not addresses.within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` nodes of Forwarded headers, in order, as bare addresses."""
    out = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, node = pair.strip().partition("=")
                if name.strip().lower() == "for":
                    out.append(_node_address(node.strip().strip('"')))
    return out


def _node_address(node: str) -> str:
    """'[2001:db8::1]:4711' -> '2001:db8::1'; '192.0.2.1:80' -> '192.0.2.1'."""
    if node.startswith("["):
        return node[1:].partition("]")[0]
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


class ConnectionGuard:
    """Admit connections within the caps (in all, per client key), and cut a connection whose
    request headers do not arrive within ``header_timeout_seconds``.

    aiohttp has no header read timeout: a client sending a header byte every few seconds held
    its connection for ever. The timer runs from the connection's start, and from the first
    byte of each later request; the app's middleware (`middleware`) stops it when a request's
    headers are in (its body has a timeout of its own, collector/handlers.py).
    """

    def __init__(
        self, header_timeout_seconds: float, max_connections: int, max_per_client: int
    ) -> None:
        self.header_timeout_seconds = header_timeout_seconds
        self.max_connections, self.max_per_client = max_connections, max_per_client
        self.open = 0
        self.per_client: collections.Counter[str] = collections.Counter()
        self._timers: dict[Any, asyncio.TimerHandle] = {}
        self._busy: set[Any] = set()  # connections whose request is being handled
        self.refused = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory (a runner's server) in this guard."""
        return lambda: _Guarded(inner(), self)

    def admit(self, key: str) -> bool:
        if self.open >= self.max_connections or self.per_client[key] >= self.max_per_client:
            self.refused += 1
            return False
        self.open += 1
        self.per_client[key] += 1
        return True

    def release(self, key: str, transport: Any) -> None:
        self.open -= 1
        self.per_client[key] -= 1
        if self.per_client[key] <= 0:
            del self.per_client[key]
        self.stop_timer(transport)
        self._busy.discard(transport)

    def bytes_in(self, transport: Any) -> None:
        """A request's bytes arrive: its headers must be in before the timeout."""
        if transport not in self._busy and transport not in self._timers:
            self.start_timer(transport)

    def start_timer(self, transport: Any) -> None:
        self.stop_timer(transport)
        loop = asyncio.get_running_loop()
        self._timers[transport] = loop.call_later(self.header_timeout_seconds, transport.close)

    def stop_timer(self, transport: Any) -> None:
        timer = self._timers.pop(transport, None)
        if timer is not None:
            timer.cancel()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        self.stop_timer(transport)
        self._busy.add(transport)
        try:
            return await handler(request)
        finally:
            self._busy.discard(transport)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind a ConnectionGuard."""

    def __init__(self, inner: Any, guard: ConnectionGuard) -> None:
        self.inner, self.guard = inner, guard
        self.key: str | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        key = rate_key(peer[0] if peer else "")
        if not self.guard.admit(key):
            transport.abort()
            return
        self.key, self.transport = key, transport
        self.guard.start_timer(transport)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.key is not None:
            self.guard.bytes_in(self.transport)
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.key is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.key is None:
            return
        self.guard.release(self.key, self.transport)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


# How long aiohttp reads (and drops) the rest of a body a handler left unread, before closing:
# its default of 10 s let a refused client (a 413, a 408) dribble on for that long.
LINGERING_SECONDS = 1.0


def runner(app: web.Application, **options: Any) -> web.AppRunner:
    """aiohttp's runner for ``app`` as the collector serves it."""
    return web.AppRunner(app, lingering_time=LINGERING_SECONDS, **options)


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, its connections behind a ConnectionGuard."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.guard.factory(server), self._host, self._port)
