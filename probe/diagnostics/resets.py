"""Who sent a reset: the connection is made again while a raw socket watches its 4-tuple, and
the RST's IP TTL is compared with the SYN-ACK's. The server's own reset left with the same
initial TTL over the same hops; a box on the path forges one that does not (lab.md §6)."""

from __future__ import annotations

import socket

from probe.diagnostics import triggers
from probe.diagnostics.capture import Capture, Packet
from probe.diagnostics.pacing import Budget
from probe.record import ResetOrigin

SYN, RST, ACK = 0x02, 0x04, 0x10
WAIT_SECONDS = 2.0


async def probe(
    address: str, port: int, payload: bytes, budget: Budget
) -> tuple[ResetOrigin | None, int, int]:
    """Send ``payload`` again on a new connection to ``address``:``port`` and tell who resets it;
    return the finding, the packets sent and the malformed packets (None: no budget left)."""
    if not budget.reserve(triggers.TCP_MAX_PACKETS):
        return None, 0, 0
    await budget.pace(triggers.TCP_MAX_PACKETS)
    ports: list[int] = []

    def ours(p: Packet) -> bool:
        return p.sport == port and p.dport in ports

    async with Capture(socket.IPPROTO_TCP, ours, source=address) as capture:
        ex = await triggers.tcp_exchange(
            address, port, payload, triggers.NORMAL_TTL, WAIT_SECONDS, ports.append
        )
        seen = list(capture.packets)
        malformed = capture.malformed
    budget.refund(triggers.TCP_MAX_PACKETS - ex.packets)
    return judge(seen), ex.packets, malformed


def judge(seen: list[Packet]) -> ResetOrigin:
    """Compare the first SYN-ACK and the first RST of one connection (``unknown`` without both:
    a reset at the SYN has no server packet to compare with)."""
    synack = next((p for p in seen if (p.tcp_flags or 0) & (SYN | ACK) == SYN | ACK), None)
    rst = next((p for p in seen if (p.tcp_flags or 0) & RST), None)
    result = "unknown"
    if synack is not None and rst is not None:
        result = "server" if rst.ttl == synack.ttl else "path"
    return ResetOrigin(
        result=result,
        synack_ttl=synack.ttl if synack else None,
        rst_ttl=rst.ttl if rst else None,
        synack_ip_id=synack.ip_id if synack else None,
        rst_ip_id=rst.ip_id if rst else None,
    )
