"""The tests' programmable DNS server on loopback (UDP and TCP on one port), answering from zones.

It runs in the test's event loop (``serving``) for the step tests, or in an event loop of its own
thread (``serving_in_thread``) when the test blocks meanwhile: on a probe subprocess, on a
command run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

Stop = Callable[[], Awaitable[None]]


@dataclass
class Zone:
    """What the DNS server answers for one name (for A and AAAA alike, split by address family)."""

    addresses: list[str] = field(default_factory=list)
    rcode: str = "NOERROR"
    ede: list[tuple[int, str]] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)  # chain from the name; addresses on the last
    # UDP replies carry TC and are "empty" (no answer) or "cut" (wire cut inside a record);
    # TCP replies are whole
    truncate: str | None = None
    second: list[str] | None = None  # a second, different UDP reply to the same id (injection)
    silent: bool = False  # no reply at all
    lose_udp: int = 0  # the next N UDP queries are lost (a lossy line): no reply to them


@dataclass
class DNSServer:
    """Answers each name from its zone in ``zones``, other names from ``default``; logs queries."""

    host: str
    port: int
    zones: dict[str, Zone] = field(default_factory=dict)
    default: Zone = field(default_factory=Zone)
    queries: list[tuple[str, dns.message.Message]] = field(default_factory=list)

    def zone(self, message: dns.message.Message) -> Zone:
        """Return the zone of the name ``message`` asks about."""
        name = message.question[0].name.to_text(omit_final_dot=True).lower()
        return self.zones.get(name, self.default)

    def names(self) -> list[str]:
        """Return the names asked so far, in order (repeats kept)."""
        return [q.question[0].name.to_text(omit_final_dot=True).lower() for _, q in self.queries]

    def reply(self, query: dns.message.Message, transport: str) -> list[dns.message.Message]:
        """Return the replies to send for ``query`` (none, one, or two for an injection)."""
        self.queries.append((transport, query))
        zone = self.zone(query)
        if zone.silent:
            return []
        if zone.lose_udp and transport == "udp":
            zone.lose_udp -= 1
            return []
        if zone.truncate and transport == "udp":
            truncated = _response(query, zone, [] if zone.truncate == "empty" else zone.addresses)
            truncated.flags |= dns.flags.TC
            return [truncated]
        first = _response(query, zone, zone.addresses)
        if zone.second is None or transport == "tcp":
            return [first]
        return [first, _response(query, zone, zone.second)]


def _response(query: dns.message.Message, zone: Zone, addresses: list[str]) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.from_text(zone.rcode))
    if query.edns >= 0 and zone.ede:
        options = [dns.edns.EDEOption(code, text) for code, text in zone.ede]
        response.use_edns(0, 0, 1232, options=options)
    question = query.question[0]
    name = question.name
    for target in zone.cnames:
        response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", target + "."))
        name = dns.name.from_text(target)
    family = ":" if question.rdtype == dns.rdatatype.AAAA else "."
    matching = [a for a in addresses if family in a]
    if matching:
        response.answer.append(dns.rrset.from_text(name, 60, "IN", question.rdtype, *matching))
    return response


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        replies = self.server.reply(query, "udp")
        loop = asyncio.get_running_loop()
        for i, reply in enumerate(replies):
            wire = reply.to_wire()
            if reply.flags & dns.flags.TC and self.server.zone(reply).truncate == "cut":
                wire = wire[:-3]  # inside the last record, as a careless truncation would
            # the injected reply comes a little after the first, as a racing injector's would
            assert self.transport is not None
            loop.call_later(0.02 * i, self.transport.sendto, wire, addr)


async def _serve_tcp(server: DNSServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter):
    try:
        while True:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            query = dns.message.from_wire(await reader.readexactly(size))
            for reply in server.reply(query, "tcp"):
                wire = reply.to_wire()
                w.write(struct.pack("!H", len(wire)) + wire)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client is done
    finally:
        w.close()


async def start(host: str, default: Zone | None = None) -> tuple[DNSServer, Stop]:
    """Start a DNS server on ``host``, UDP and TCP on the same port; return it and its stopper."""
    for _ in range(4):
        # the free TCP port may be taken for UDP: other suites run on this host at the same time
        with contextlib.suppress(OSError):
            return await _start_on_a_free_port(host, default or Zone())
    return await _start_on_a_free_port(host, default or Zone())


async def _start_on_a_free_port(host: str, default: Zone) -> tuple[DNSServer, Stop]:
    loop = asyncio.get_running_loop()
    holder: list[DNSServer] = []
    tcp = await asyncio.start_server(lambda r, w: _serve_tcp(holder[0], r, w), host, 0)
    port = tcp.sockets[0].getsockname()[1]
    server = DNSServer(host=host, port=port, default=default)
    holder.append(server)
    try:
        udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(server), (host, port))
    except OSError:
        tcp.close()
        await tcp.wait_closed()
        raise

    async def stop() -> None:
        udp.close()
        tcp.close()
        await tcp.wait_closed()

    return server, stop


@contextlib.asynccontextmanager
async def serving(host: str = "127.0.0.1", default: Zone | None = None) -> AsyncIterator[DNSServer]:
    """Run a DNS server in the running event loop while the block runs."""
    server, stop = await start(host, default)
    try:
        yield server
    finally:
        await stop()


@contextlib.contextmanager
def serving_in_thread(host: str = "127.0.0.1", default: Zone | None = None) -> Iterator[DNSServer]:
    """Run a DNS server in an event loop of its own thread while the block runs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dns-server", daemon=True)
    thread.start()
    try:
        server, stop = asyncio.run_coroutine_threadsafe(start(host, default), loop).result(10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
