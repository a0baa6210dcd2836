"""DNS queries to one resolver over a few connected UDP sockets, many in flight on each.

Resolving a million names cannot afford a socket (and its event-loop endpoint) a query: that
was a third of the cost. Here up to MAX_WAITING queries share a socket connected to the
resolver, so the kernel drops datagrams from any other source; a reply is taken only if its id
is one in flight AND it answers that query's question (``Message.is_response``). A socket is
replaced after ROTATE_QUERIES queries (a fresh random source port), so a long pass does not
leave an off-path spoofer one fixed port to aim at, only its 16-bit ids.
"""

from __future__ import annotations

import asyncio
import secrets
import typing
from typing import Any

import dns.exception
import dns.message

ROTATE_QUERIES = 5000
# Queries in flight on one socket: their replies must fit its receive buffer (Linux's default,
# 208 KiB, holds about 160 small datagrams) while the event loop is busy, or the kernel drops
# them and the names fail for nothing.
MAX_WAITING = 32


class Exchange(asyncio.DatagramProtocol):
    """Queries in flight on one socket: id -> (the query, the future its reply resolves)."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[dns.message.Message, asyncio.Future[Any]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0
        self.retired = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        found = self.waiting.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if found is None or found[1].done():
            return  # late, unknown or too short: not ours
        query, future = found
        try:
            reply = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError):
            return  # a broken reply: the query times out, and is tried again
        if query.is_response(reply):
            future.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable and the like: the queries in flight time out

    def connection_lost(self, exc: Exception | None) -> None:
        self.retired = True

    async def ask(self, query: dns.message.Message, timeout_seconds: float) -> Any:
        """Send ``query`` (its id replaced) and return the reply; TimeoutError if none came."""
        assert self.transport is not None
        query.id = self._free_id()
        future = asyncio.get_running_loop().create_future()
        self.waiting[query.id] = (query, future)
        self.sent += 1
        try:
            self.transport.sendto(query.to_wire())
            async with asyncio.timeout(timeout_seconds):
                return await future
        finally:
            del self.waiting[query.id]
            if self.retired and not self.waiting:
                self.transport.close()

    def _free_id(self) -> int:
        while True:
            candidate = secrets.randbits(16)
            if candidate not in self.waiting:
                return candidate


class Exchanges:
    """The sockets to one resolver: at most MAX_WAITING queries in flight on each, each
    replaced after ROTATE_QUERIES queries."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        self.open: list[Exchange] = []
        self._opening = asyncio.Lock()

    async def ask(self, query: dns.message.Message, timeout_seconds: float) -> Any:
        """Send ``query`` and return its reply; TimeoutError or OSError if it did not come."""
        async with self._opening:
            for old in [e for e in self.open if e.retired or e.sent >= ROTATE_QUERIES]:
                self._retire(old)
                self.open.remove(old)
            exchange = next((e for e in self.open if len(e.waiting) < MAX_WAITING), None)
            if exchange is None:
                loop = asyncio.get_running_loop()
                _, exchange = await loop.create_datagram_endpoint(
                    Exchange, remote_addr=(self.ip, self.port)
                )
                self.open.append(exchange)
        return await exchange.ask(query, timeout_seconds)

    def close(self) -> None:
        """Close the sockets once their queries in flight are answered or time out."""
        for exchange in self.open:
            self._retire(exchange)
        self.open = []

    @staticmethod
    def _retire(exchange: Exchange) -> None:
        exchange.retired = True
        if not exchange.waiting and exchange.transport is not None:
            exchange.transport.close()
