"""The whoami lookup: which resolver the line really uses, seen from an authoritative server.

A whoami name (``whoami.akamai.net``) is answered by its authoritative server with the address
the query came from: asked through the system resolver, it gives that resolver's egress address,
which the collector maps to a network. A probe whose "system" resolver is 8.8.8.8 is then not
counted as its ISP's resolver. The lookup goes through the `system` path when the list has one,
else through the primary path when it is plain DNS; never through DoT or DoH (the answer would
name the DoH provider's egress, which the path already names).
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.addresses import is_ip
from probe.flow import DNSStep
from probe.resolvers import ResolverPath
from probe.steps import dns


def path_for(paths: Sequence[ResolverPath]) -> ResolverPath | None:
    """The path the whoami lookup goes through, or None when there is none to use."""
    system = next((p for p in paths if p.name == "system" and p.transport == "udp"), None)
    if system is not None:
        return system
    return paths[0] if paths and paths[0].transport == "udp" else None


# names answered in TXT (the address quoted), not A
TXT_NAMES = ("o-o.myaddr.l.google.com",)


async def egress(
    name: str, path: ResolverPath, timeout_seconds: float, step: DNSStep = dns.measure_listening
) -> str | None:
    """Ask ``name`` (A, or TXT for Google's) through ``path``; return the address answered, or
    None."""
    spec = dns.DNSSpec(
        name=name, qtype="TXT" if name in TXT_NAMES else "A", resolver=path.address,
        port=path.port, timeout_seconds=timeout_seconds, listen_extra_seconds=0.0, path=path.name,
    )  # fmt: skip
    result, listen = await step(spec)
    await listen  # listen_extra_seconds 0: over at once, and its socket closed
    # a TXT answer is quoted; Google adds "edns0-client-subnet 192.0.2.0/24": not an address
    answers = [a.strip('"') for a in result.answers if is_ip(a.strip('"'))]
    return answers[0] if result.failure is None and answers else None
