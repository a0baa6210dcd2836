"""DNS injection: the blocked name asked of an address that runs no resolver, and the race.

Any reply from such an address was forged on the path (OONI's dns_injection); its IP TTL and
IP-ID are kept, a forger's usually differ from the real host's. Two different replies to one
query of the DNS step (its second-reply listen) is a race between a forger and the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from probe.diagnostics.capture import Capture, Packet
from probe.diagnostics.pacing import Budget
from probe.record import MAX_DIAGNOSTIC_ANSWERS, DNSInjection, DNSResult, InjectedAnswer

LISTEN_SECONDS = 1.5


def raced(results: list[DNSResult]) -> bool:
    """Tell whether a UDP query of the DNS step got two replies with different answers."""
    return any(
        r.second_reply is not None and sorted(r.second_reply) != sorted(r.answers)
        for r in results
        if r.transport == "udp"
    )


async def probe(
    name: str, silent: str, dns_results: list[DNSResult], budget: Budget
) -> tuple[DNSInjection | None, int, int]:
    """Ask ``silent`` for ``name`` (A, UDP) once and listen; return the finding, the packets
    sent and the malformed replies (None: no packet left in the budget)."""
    if not budget.reserve(1):
        return None, 0, 0
    await budget.pace(1)
    query = dns.message.make_query(name, "A")
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]

        def ours(p: Packet) -> bool:
            return p.sport == 53 and p.dport == port

        async with Capture(socket.IPPROTO_UDP, ours, source=silent) as capture:
            await loop.sock_sendto(sock, query.to_wire(), (silent, 53))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_SECONDS):
                    while len(capture.packets) < MAX_DIAGNOSTIC_ANSWERS:
                        capture.arrived.clear()
                        await capture.arrived.wait()
            heard = list(capture.packets)
            malformed = capture.malformed
    answers: list[InjectedAnswer] = []
    for p in heard[:MAX_DIAGNOSTIC_ANSWERS]:
        answer = _answer(p, query)
        if answer is None:
            malformed += 1
        else:
            answers.append(answer)
    result = "race" if raced(dns_results) else ("on_path" if answers else "none")
    return DNSInjection(result=result, queried=silent, answers=answers), 1, malformed


def _answer(p: Packet, query: dns.message.Message) -> InjectedAnswer | None:
    """The facts of one reply, or None when it is not a DNS reply to ``query``."""
    try:
        reply = dns.message.from_wire(p.payload)
    except (dns.exception.DNSException, ValueError):
        return None
    if not query.is_response(reply):
        return None
    addresses = [
        rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset
    ][:MAX_DIAGNOSTIC_ANSWERS]
    return InjectedAnswer(
        source=p.source, ttl=p.ttl, ip_id=p.ip_id,
        rcode=dns.rcode.to_text(reply.rcode()), addresses=addresses,
    )  # fmt: skip
