"""The DNS step: one query to the tested resolver, keeping rcode, answers, CNAMEs, EDE, injection.

A resolver path's transport (probe/resolvers.py) says how: ``udp`` (below), or ``dot`` and
``doh`` (probe/steps/secure_dns.py: one query on a connection of its own, no race to watch).

The query goes over UDP with EDNS (so Extended DNS Errors, RFC 8914, can come back), and over TCP
when the reply is truncated (RFC 7766). After the first valid UDP reply the socket stays open for
``listen_extra_seconds``: an on-path injector races the real resolver, so a second, different
reply to the same query id is the mark of injection (lab.md §7). ``ms`` is the time to the reply
used, without that extra listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from probe import failures
from probe.record import EDE, DNSResult
from probe.steps import secure_dns
from probe.times import elapsed_ms

# TXT only for the whoami lookup (probe/whoami.py): Google's o-o.myaddr.l.google.com
QTYPES = ("A", "AAAA", "TXT")
TRANSPORTS = ("udp", "dot", "doh")
# RFC 9715 / DNS Flag Day 2020: large enough for EDE texts, small enough to avoid fragmentation
_EDNS_PAYLOAD = 1232
# a lost UDP query or reply is sent again after this long, within the step's timeout
RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class DNSSpec:
    name: str
    qtype: str
    resolver: str
    port: int = 53
    timeout_seconds: float = 5.0
    listen_extra_seconds: float = 0.3
    transport: str = "udp"  # or "dot", "doh"
    path: str | None = None  # the resolver path's name, kept in the result
    hostname: str | None = None  # DoT: the name the certificate must carry (None: unchecked)
    url: str | None = None  # DoH: the endpoint
    ca_file: str | None = None  # DoT, DoH: extra trusted CA bundle

    def __post_init__(self) -> None:
        if self.qtype not in QTYPES:
            raise ValueError(f"qtype: {self.qtype!r} is not one of {QTYPES}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport: {self.transport!r} is not one of {TRANSPORTS}")


class _Replies(asyncio.DatagramProtocol):
    """Queue every reply to one query arriving on a connected UDP socket, and socket errors."""

    def __init__(self, query: dns.message.Message) -> None:
        self.query = query
        self.queue: asyncio.Queue[dns.message.Message | OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = dns.message.from_wire(data, raise_on_truncation=True)
        except dns.message.Truncated as exc:
            # TC set and cut inside a record: keep what parsed, the TC flag sends us to TCP
            reply = exc.message()
        except dns.exception.DNSException:
            return  # not a DNS message: ignore it and keep waiting, as dnspython does
        if self.query.is_response(reply):
            self.queue.put_nowait(reply)

    def error_received(self, exc: Exception) -> None:
        # an ICMP port unreachable shows up here on a connected socket (ECONNREFUSED)
        if isinstance(exc, OSError):
            self.queue.put_nowait(exc)

    async def next_reply(self) -> dns.message.Message:
        """Return the next valid reply, or raise the socket error that came first."""
        item = await self.queue.get()
        if isinstance(item, OSError):
            raise item
        return item


async def measure(spec: DNSSpec) -> DNSResult:
    """Ask ``spec.resolver`` about ``spec.name``; never raise on a network failure."""
    result, listening = await measure_listening(spec)
    second = await listening
    return result if second is None else dataclasses.replace(result, second_reply=second)


async def measure_listening(spec: DNSSpec) -> tuple[DNSResult, asyncio.Future[list[str] | None]]:
    """Return at the first reply, with the listen for a second one still going on.

    The second element resolves to the answers of a different later reply (or None) within
    ``listen_extra_seconds``: the flow goes on to TCP, TLS and HTTP meanwhile and folds the
    answers into the record at the end, so the listen costs no time on the critical path.
    """
    loop = asyncio.get_running_loop()
    if spec.transport != "udp":
        return await _measure_secure(spec), _nothing(loop)
    started = time.perf_counter()
    transport: asyncio.DatagramTransport | None = None
    try:
        query = dns.message.make_query(spec.name, spec.qtype, use_edns=0, payload=_EDNS_PAYLOAD)
        async with asyncio.timeout(spec.timeout_seconds):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Replies(query), remote_addr=(spec.resolver, spec.port)
            )
            reply = await _exchange(transport, protocol, query.to_wire())
            truncated = bool(reply.flags & dns.flags.TC)
            if truncated:
                reply = await dns.asyncquery.tcp(query, spec.resolver, port=spec.port)
        ms = elapsed_ms(started)
    except failures.NETWORK_ERRORS as exc:
        if transport is not None:
            transport.close()
        return _failed(spec, exc, started), _nothing(loop)
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    result = _result(spec, reply, ms, "tcp" if truncated else "udp", None)
    if truncated:  # the answer came over TCP: no UDP race to watch
        transport.close()
        return result, _nothing(loop)
    return result, asyncio.ensure_future(_listen(transport, protocol, reply, spec))


async def _measure_secure(spec: DNSSpec) -> DNSResult:
    """Ask over DoT or DoH: one query, one reply, no race to watch."""
    started = time.perf_counter()
    try:
        query = dns.message.make_query(spec.name, spec.qtype, use_edns=0, payload=_EDNS_PAYLOAD)
        async with asyncio.timeout(spec.timeout_seconds):
            if spec.transport == "dot":
                reply = await secure_dns.dot(
                    query, spec.resolver, spec.port, spec.hostname, spec.ca_file
                )
            else:
                reply = await secure_dns.doh(query, spec.url or "", spec.ca_file)
    except failures.NETWORK_ERRORS as exc:
        return _failed(spec, exc, started)
    return _result(spec, reply, elapsed_ms(started), spec.transport, None)


def _failed(spec: DNSSpec, exc: BaseException, started: float) -> DNSResult:
    return DNSResult(
        resolver=_resolver_text(spec), qtype=spec.qtype, name=spec.name,
        failure=failures.classify(exc), ms=elapsed_ms(started), transport=spec.transport,
        path=spec.path,
    )  # fmt: skip


def _nothing(loop: asyncio.AbstractEventLoop) -> asyncio.Future[list[str] | None]:
    done: asyncio.Future[list[str] | None] = loop.create_future()
    done.set_result(None)
    return done


async def _listen(
    transport: asyncio.DatagramTransport, protocol: _Replies, first: dns.message.Message,
    spec: DNSSpec,
) -> list[str] | None:  # fmt: skip
    try:
        return await _second_reply(protocol, first, spec)
    finally:
        transport.close()


async def _exchange(
    transport: asyncio.DatagramTransport, protocol: _Replies, wire: bytes
) -> dns.message.Message:
    """Send the query, and again every RETRY_SECONDS until a reply comes (RFC 1035 §4.2.1).

    UDP may lose a packet on a lossy line: one lost query must not read as a resolver that drops.
    """
    while True:
        transport.sendto(wire)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETRY_SECONDS):
                return await protocol.next_reply()


async def _second_reply(
    protocol: _Replies, first: dns.message.Message, spec: DNSSpec
) -> list[str] | None:
    """Listen a little longer; return the answers of a later reply that differs from ``first``."""
    rdtype = dns.rdatatype.from_text(spec.qtype)
    seen = _signature(first, rdtype)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(spec.listen_extra_seconds):
            while True:
                item = await protocol.queue.get()
                if isinstance(item, dns.message.Message) and _signature(item, rdtype) != seen:
                    return _addresses(item, rdtype)
    return None


def _result(
    spec: DNSSpec, reply: dns.message.Message, ms: float, transport: str, second: list[str] | None
) -> DNSResult:
    """Build the result from the reply used: rcode, answers of qtype, CNAME chain and EDE."""
    rdtype = dns.rdatatype.from_text(spec.qtype)
    rcode = dns.rcode.to_text(reply.rcode())
    answers = _addresses(reply, rdtype)
    failure = failures.rcode_failure(rcode)
    if failure is None and not answers:
        failure = failures.DNS_NO_ANSWER
    return DNSResult(
        resolver=_resolver_text(spec), qtype=spec.qtype, failure=failure, ms=ms, rcode=rcode,
        answers=answers, cnames=_cnames(reply), ede=_ede(reply), transport=transport,
        second_reply=second, name=spec.name, path=spec.path,
    )  # fmt: skip


def _signature(
    reply: dns.message.Message, rdtype: dns.rdatatype.RdataType
) -> tuple[int, frozenset[str]]:
    """Return what tells two replies apart: the rcode and the set of addresses."""
    return reply.rcode(), frozenset(_addresses(reply, rdtype))


def _addresses(reply: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list[str]:
    """Return every answer of ``rdtype`` as text, in order, without duplicates."""
    found = [rd.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rd in rrset]
    return list(dict.fromkeys(found))


def _cnames(reply: dns.message.Message) -> list[str]:
    """Return the CNAME targets in chain order from the question name, then any others."""
    targets = {
        rrset.name: rrset[0].target for rrset in reply.answer if rrset.rdtype == dns.rdatatype.CNAME
    }
    chain: list[dns.name.Name] = []
    name = reply.question[0].name if reply.question else None
    while name in targets and len(chain) < len(targets):
        name = targets[name]
        chain.append(name)
    chain += [t for t in targets.values() if t not in chain]
    return [t.to_text(omit_final_dot=True) for t in chain]


def _ede(reply: dns.message.Message) -> list[EDE]:
    """Return the Extended DNS Errors (RFC 8914) of the reply's OPT record."""
    return [
        EDE(code=int(opt.code), text=opt.text or "")
        for opt in reply.options
        if isinstance(opt, dns.edns.EDEOption)
    ]


def _resolver_text(spec: DNSSpec) -> str:
    if spec.transport == "doh":
        return spec.url or ""
    if spec.transport == "dot":
        host = f"[{spec.resolver}]" if ":" in spec.resolver else spec.resolver
        return f"tls://{host}:{spec.port}"
    if spec.port == 53:
        return spec.resolver
    host = f"[{spec.resolver}]" if ":" in spec.resolver else spec.resolver
    return f"{host}:{spec.port}"
