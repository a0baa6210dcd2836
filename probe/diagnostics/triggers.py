"""The requests that set off blocking, sent on real sockets: a DNS query, a TLS ClientHello with
the SNI, an HTTP request with the Host; and one TCP exchange whose data may carry a low IP TTL.

The kernel makes the handshake (a connection at the normal TTL, as CenTrace does), then the
data segment leaves with the TTL asked: it dies at that hop, whose router says so in an ICMP
time exceeded, unless a box before it answers first. The packets the kernel sent are counted
from TCP_INFO (retransmissions included), so the budget is charged what went on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import dns.message

NORMAL_TTL = 64
CONNECT_SECONDS = 2.0
# a SYN sent at most twice (the first and one retransmission)
SYN_COUNT = 1
# the most a TCP exchange can send: SYNs, the ACK, the data and 3 retransmissions, the RST
TCP_MAX_PACKETS = SYN_COUNT + 1 + 1 + 1 + 3 + 1
# struct tcp_info (linux/tcp.h): u32 tcpi_total_retrans after 8 bytes and 23 u32s
_TOTAL_RETRANS = struct.Struct("=I")
_TOTAL_RETRANS_OFFSET = 8 + 23 * 4
_UNACKED_OFFSET = 8 + 4 * 4


def dns_query(name: str) -> bytes:
    """One A query for ``name`` (the bytes of a UDP datagram)."""
    return dns.message.make_query(name, "A").to_wire()


def client_hello(sni: str) -> bytes:
    """The first flight of a TLS handshake naming ``sni`` (what SNI filters read)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def http_request(host: str, path: str = "/") -> bytes:
    """A GET naming ``host`` in its Host header (what Host filters read)."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@dataclasses.dataclass
class Exchange:
    """What one TCP exchange met: the handshake, then after the data a reset, data, or nothing."""

    sport: int = 0
    connected: bool = False
    outcome: str = "silent"  # reset | data | closed | acked | silent
    packets: int = 0


async def tcp_exchange(
    address: str, port: int, payload: bytes, ttl: int, wait_seconds: float,
    on_bound: Callable[[int], None] | None = None, stop: asyncio.Event | None = None,
) -> Exchange:  # fmt: skip
    """Connect at the normal TTL, send ``payload`` with IP TTL ``ttl`` and watch ``wait_seconds``
    for a reset, data or a close; then abort the connection (a RST at the normal TTL, so the
    server forgets it). ``on_bound`` is told the source port before the SYN leaves; ``stop``
    ends the watch early."""
    loop = asyncio.get_running_loop()
    ex = Exchange()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, SYN_COUNT)
        sock.bind(("0.0.0.0", 0))
        ex.sport = sock.getsockname()[1]
        if on_bound is not None:
            on_bound(ex.sport)
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                await loop.sock_connect(sock, (address, port))
        except (OSError, TimeoutError):
            ex.packets = 1 + _retransmissions(sock)
            return ex
        ex.connected = True
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        try:
            await loop.sock_sendall(sock, payload)
            data = await _first(loop.sock_recv(sock, 4096), wait_seconds, stop)
            if data is None:
                ex.outcome = "acked" if _unacked(sock) == 0 else "silent"
            else:
                ex.outcome = "data" if data else "closed"
        except ConnectionResetError:
            ex.outcome = "reset"
        except OSError:
            ex.outcome = "silent"
        # SYN, ACK, data, what was sent again, and the abort's RST
        ex.packets = 3 + _retransmissions(sock) + (ex.outcome != "reset")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, NORMAL_TTL)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return ex


def _tcp_info(sock: socket.socket) -> bytes:
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return b""


def _retransmissions(sock: socket.socket) -> int:
    info = _tcp_info(sock)
    if len(info) < _TOTAL_RETRANS_OFFSET + 4:
        return 0
    return int(_TOTAL_RETRANS.unpack_from(info, _TOTAL_RETRANS_OFFSET)[0])


def _unacked(sock: socket.socket) -> int:
    info = _tcp_info(sock)
    if len(info) < _UNACKED_OFFSET + 4:
        return -1
    return int(_TOTAL_RETRANS.unpack_from(info, _UNACKED_OFFSET)[0])


async def udp_exchange(
    address: str, port: int, payload: bytes, ttl: int, wait_seconds: float,
    on_bound: Callable[[int], None] | None = None, stop: asyncio.Event | None = None,
) -> tuple[int, bytes | None]:  # fmt: skip
    """Send one datagram with IP TTL ``ttl``; return the source port and the first reply (None:
    none in ``wait_seconds``)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("0.0.0.0", 0))
        sport = sock.getsockname()[1]
        if on_bound is not None:
            on_bound(sport)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.connect((address, port))
        await loop.sock_sendall(sock, payload)
        try:
            return sport, await _first(loop.sock_recv(sock, 4096), wait_seconds, stop)
        except OSError:
            return sport, None


async def _first(
    recv: Awaitable[bytes], wait_seconds: float, stop: asyncio.Event | None
) -> bytes | None:
    """Return what ``recv`` gives within ``wait_seconds``; None when the time runs out or
    ``stop`` is set first (its errors are raised)."""
    reading = asyncio.ensure_future(recv)
    waits: list[asyncio.Future[Any]] = [reading]
    if stop is not None:
        waits.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waits, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits[1:]:
            w.cancel()
    if not reading.done():
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        return None
    return reading.result()
