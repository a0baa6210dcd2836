"""A plain client for proving the lab: DNS, TCP, TLS and HTTP/1.1 by hand, no probe code.

``walk(url, resolver, ...)`` resolves with dnspython at an explicit server (run_in threads do
not see /etc/netns resolv.conf), connects to the first address, upgrades to TLS with the lab CA
and SNI, sends one GET, follows redirects, and stops at the first failing step. Exceptions are
named by ``probe.failures`` (the project's one classifier), so the lab and the probe agree on
the strings. A DNS answer outside 10.200.0.0/16 stops the walk without connecting, as the probe
must.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
import urllib.parse

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from probe import failures
from tests.lab import addressing

LAB_NET = ipaddress.ip_network(addressing.NETWORK)
LAB_NET6 = ipaddress.ip_network(addressing.NETWORK6)


@dataclasses.dataclass
class Answer:
    rcode: str | None
    addresses: list[str]
    ede: list[int]
    failure: str | None


@dataclasses.dataclass
class Hop:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class Observation:
    """Where a walk stopped (step None: it completed) and what it saw on the way."""

    url: str
    step: str | None = None
    failure: str | None = None
    addresses: list[str] = dataclasses.field(default_factory=list)
    hops: list[Hop] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> int | None:
        return self.hops[-1].status if self.hops else None


@dataclasses.dataclass(frozen=True)
class Timeouts:
    dns: float = 1.0
    connect: float = 0.6
    tls: float = 0.6
    http: float = 3.0


DEFAULT = Timeouts()


async def resolve(server: str, name: str, qtype: str = "A", timeout_seconds: float = 1.0) -> Answer:
    """Ask ``server`` one question over UDP; map the outcome like the probe would."""
    query = dns.message.make_query(name, qtype, use_edns=0)
    try:
        reply = await dns.asyncquery.udp(query, server, timeout=timeout_seconds)
    except (dns.exception.DNSException, OSError) as e:
        return Answer(None, [], [], failures.classify(e))
    rcode = dns.rcode.to_text(reply.rcode())
    want = dns.rdatatype.from_text(qtype)
    addresses = [rr.to_text() for rrset in reply.answer if rrset.rdtype == want for rr in rrset]
    ede = [int(opt.code) for opt in reply.extended_errors()]
    failure = failures.rcode_failure(rcode)
    if failure is None and not addresses:
        failure = failures.DNS_NO_ANSWER
    return Answer(rcode, addresses, ede, failure)


async def all_replies(server: str, name: str, wait: float) -> list[tuple[str, list[str]]]:
    """Send one UDP query and collect every reply for ``wait`` seconds (injection shows as 2)."""
    loop = asyncio.get_running_loop()
    query = dns.message.make_query(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, query.to_wire(), (server, 53))
        out: list[tuple[str, list[str]]] = []
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                data, src = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), left)
            except TimeoutError:
                break
            reply = dns.message.from_wire(data)
            out.append((src[0], [rr.to_text() for rrset in reply.answer for rr in rrset]))
        return out


def client_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def walk(
    url: str, resolver: str, ca_file: str | None, timeouts: Timeouts = DEFAULT,
    family: int = 4, max_redirects: int = 5,
) -> Observation:  # fmt: skip
    """Follow ``url`` step by step (and its redirects); stop at the first failure."""
    seen = Observation(url)
    for _ in range(max_redirects + 1):
        hop = await _hop(url, resolver, ca_file, timeouts, family, seen)
        if hop is None:
            return seen
        seen.hops.append(hop)
        location = hop.headers.get("location")
        if not (300 <= hop.status < 400 and location):
            return seen
        url = urllib.parse.urljoin(url, location)
    return seen


async def _hop(
    url: str, resolver: str, ca_file: str | None, t: Timeouts, family: int, seen: Observation
) -> Hop | None:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _is_address(host):
        address = host  # an address literal: nothing to resolve
    else:
        answer = await resolve(resolver, host, "AAAA" if family == 6 else "A", t.dns)
        seen.addresses = answer.addresses
        if answer.failure:
            return _stopped(seen, "dns", answer.failure)
        address = answer.addresses[0]
    if ipaddress.ip_address(address) not in (LAB_NET6 if family == 6 else LAB_NET):
        return _stopped(seen, "dns", None)  # a bogon: never connect to it
    step = "tcp"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), t.connect)
        try:
            if parts.scheme == "https":
                step = "tls"
                ctx = client_context(ca_file)
                await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), t.tls)
            step = "http"
            return await asyncio.wait_for(_get(reader, writer, url, host, parts), t.http)
        finally:
            await close(writer)
    except (OSError, TimeoutError, ssl.SSLError, EOFError) as e:
        return _stopped(seen, step, failures.classify(e))


async def reach(
    address: str, sni: str | None, ca_file: str | None, timeouts: Timeouts = DEFAULT,
    port: int = 443, verify: bool = True,
) -> tuple[str | None, str | None]:  # fmt: skip
    """Connect to ``address`` and, with an SNI, complete a TLS handshake naming it (verified
    against ``ca_file`` unless ``verify`` is false, as a census sweep does not verify); return
    (None, None), or the step that failed ("tcp" or "tls") and its failure string."""
    step = "tcp"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeouts.connect)
        try:
            if sni is not None:
                step = "tls"
                ctx = client_context(ca_file)
                if not verify:
                    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                await asyncio.wait_for(writer.start_tls(ctx, server_hostname=sni), timeouts.tls)
        finally:
            await close(writer)
    except (OSError, TimeoutError, ssl.SSLError) as e:
        return step, failures.classify(e)
    return None, None


async def close(writer: asyncio.StreamWriter) -> None:
    """Close at once: a TLS close waits for the peer's close_notify (up to 30 s), and a socket
    still open when the thread's event loop ends is a ResourceWarning (an error under pytest)."""
    writer.transport.abort()
    await asyncio.sleep(0)  # let the transport's connection_lost close the socket


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _stopped(seen: Observation, step: str, failure: str | None) -> Hop | None:
    """Record where the walk stopped; return None (no hop) for the caller to pass on."""
    seen.step, seen.failure = step, failure
    return None


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str, host: str,
    parts: urllib.parse.SplitResult,
) -> Hop:  # fmt: skip
    path = parts.path or "/"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read(-1)
    if not raw:
        raise EOFError("empty response")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Hop(url, int(lines[0].split()[1]), headers, body)
