"""Copies of the packets of one IP protocol reaching this host (a raw socket), parsed by scapy.

A raw IPv4 socket receives every incoming packet of its protocol, IP header included, beside
the socket the kernel delivers it to: the IP TTL and IP-ID of a reply, and the ICMP errors our
TTL-limited packets provoke, can be read without taking the packet from its real reader.
Every packet is hostile input: one scapy cannot make sense of is counted in ``malformed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
import types
from collections.abc import Callable
from typing import Any

# time exceeded in transit (RFC 792)
ICMP_TIME_EXCEEDED = 11


@dataclasses.dataclass(frozen=True)
class Packet:
    """The facts kept of one captured IPv4 packet."""

    source: str
    ttl: int
    ip_id: int
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None
    payload: bytes = b""
    # an ICMP time exceeded: the quoted packet's protocol, source port and destination
    quoted: tuple[int, int, str] | None = None


@functools.cache
def scapy() -> types.SimpleNamespace:
    """Import scapy's IPv4 layers, once (about a second): only when a diagnosis runs."""
    from scapy.layers import inet

    return types.SimpleNamespace(
        IP=inet.IP, TCP=inet.TCP, UDP=inet.UDP, ICMP=inet.ICMP,
        IPerror=inet.IPerror, TCPerror=inet.TCPerror, UDPerror=inet.UDPerror,
    )  # fmt: skip


def parse(data: bytes) -> Packet | None:
    """Return the facts of one raw IPv4 packet, or None when it does not parse."""
    s = scapy()
    try:
        ip = s.IP(data)
        if ip.version != 4 or ip.ihl is None or len(data) < ip.ihl * 4:
            return None
        return _facts(s, ip)
    except Exception:  # scapy raises many kinds on hostile bytes: the packet is malformed
        return None


def _facts(s: types.SimpleNamespace, ip: Any) -> Packet | None:
    base = Packet(source=str(ip.src), ttl=int(ip.ttl), ip_id=int(ip.id))
    with_ = functools.partial(dataclasses.replace, base)
    if ip.haslayer(s.TCP) and not ip.haslayer(s.ICMP):
        t = ip[s.TCP]
        return with_(sport=int(t.sport), dport=int(t.dport), tcp_flags=int(t.flags),
                      payload=bytes(t.payload))  # fmt: skip
    if ip.haslayer(s.UDP) and not ip.haslayer(s.ICMP):
        u = ip[s.UDP]
        return with_(sport=int(u.sport), dport=int(u.dport), payload=bytes(u.payload))
    if ip.haslayer(s.ICMP):
        icmp = ip[s.ICMP]
        if icmp.type != ICMP_TIME_EXCEEDED:
            return base
        if not ip.haslayer(s.IPerror):
            return None  # a time exceeded must quote the packet that expired
        inner = ip[s.IPerror]
        quoted = ip[s.TCPerror] if ip.haslayer(s.TCPerror) else None
        quoted = quoted or (ip[s.UDPerror] if ip.haslayer(s.UDPerror) else None)
        if quoted is None:
            return None
        return with_(quoted=(int(inner.proto), int(quoted.sport), str(inner.dst)))
    return base


class Capture:
    """While open, keep every packet of ``proto`` that ``keep`` accepts; count the malformed."""

    def __init__(
        self, proto: int, keep: Callable[[Packet], bool], source: str | None = None
    ) -> None:
        self.proto, self.keep = proto, keep
        # packets from another source are passed over unparsed (a busy line: scapy is slow)
        self._source = socket.inet_aton(source) if source else None
        self.packets: list[Packet] = []
        self.malformed = 0
        self.arrived = asyncio.Event()  # set at each packet kept
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Capture:
        scapy()  # imported before the capture starts: the first reply is not late
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, self.proto)
        self._sock.setblocking(False)
        self._task = asyncio.create_task(self._read(self._sock))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()

    async def _read(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(sock, 65535)
            if self._source is not None and data[12:16] != self._source:
                continue
            packet = parse(data)
            if packet is None:
                self.malformed += 1
            elif self.keep(packet):
                self.packets.append(packet)
                self.arrived.set()

    def time_exceeded(self, proto: int, sport: int) -> Packet | None:
        """The first ICMP time exceeded quoting a packet of ours (protocol and source port)."""
        return next((p for p in self.packets if p.quoted and p.quoted[:2] == (proto, sport)), None)
