"""Resolving the domain index from the collector's vantage: A and AAAA of each name due, through
one resolver, at most ``qps`` names a second, the answers recorded in chunks.

Queries share a socket to the resolver (collector/census/exchange.py). Bounds, whatever the
resolver or the names do: ``qps`` (a token bucket), IN_FLIGHT names in
flight, each query ATTEMPTS tries of TIMEOUT_SECONDS, MAX_ADDRESSES per name and family. The
resolver follows CNAME chains; the final A/AAAA answers are taken. Only connectable addresses
(probe/addresses.py: public, or within the allowed networks) are kept. A name whose resolver
failed (timeout, SERVFAIL, REFUSED, a broken reply) is not recorded: a passing failure must not
make its addresses stop being current.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from collector.census import index
from collector.census.exchange import Exchanges
from collector.metrics import CENSUS_RESULTS
from probe import addresses
from probe.addresses import Network

TIMEOUT_SECONDS = 2.0
ATTEMPTS = 2
IN_FLIGHT = 128  # names resolving at once (two queries each)
MAX_ADDRESSES = 32  # kept per name and family: a hostile answer cannot flood the index
PAGE = 2000  # names read from the index at once
FLUSH = 1000  # answers recorded in one transaction
PROGRESS_SECONDS = 5.0
RESULTS = CENSUS_RESULTS  # how a name's resolution ended; "failed" is not recorded

Progress = Callable[[int, int, float], None]
"""(names done, names due at the start, seconds since the start)"""
Counted = Callable[[str, int], None]
"""(a result of RESULTS, how many names ended so) after each recorded chunk"""


@dataclasses.dataclass
class Resolver:
    """One recursive resolver, and which non-public answers to keep anyway."""

    ip: str
    port: int = 53
    allow_networks: tuple[Network, ...] = ()
    timeout_seconds: float = TIMEOUT_SECONDS
    attempts: int = ATTEMPTS
    exchanges: Exchanges = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.exchanges = Exchanges(self.ip, self.port)

    def close(self) -> None:
        """Close the socket to the resolver once its queries in flight end (the next lookup
        opens another)."""
        self.exchanges.close()

    async def lookup(self, name: str) -> list[str] | None:
        """Return the connectable addresses of ``name`` (A then AAAA), or None if the
        resolver failed for either."""
        replies = await asyncio.gather(
            self._query(name, dns.rdatatype.A), self._query(name, dns.rdatatype.AAAA)
        )
        found: list[str] = []
        for reply, rdtype in zip(replies, (dns.rdatatype.A, dns.rdatatype.AAAA), strict=True):
            if reply is None:
                return None
            found += self._kept(reply, rdtype)
        return found

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> Any:
        """Return the reply (NOERROR or NXDOMAIN) to one question, or None after every try."""
        query = dns.message.make_query(name, rdtype)
        for _ in range(self.attempts):
            try:
                reply = await self.exchanges.ask(query, self.timeout_seconds)
                if reply.flags & dns.flags.TC:
                    reply = await dns.asyncquery.tcp(
                        query, self.ip, self.timeout_seconds, self.port
                    )
            except (TimeoutError, dns.exception.DNSException, OSError, EOFError):
                continue  # lost, late or broken: try again, then count the name as failed
            if reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return reply
            return None  # SERVFAIL, REFUSED...: the resolver's considered answer
        return None

    def _kept(self, reply: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list[str]:
        if reply.rcode() != dns.rcode.NOERROR:
            return []
        answers = [rd.address for rrset in reply.answer if rrset.rdtype == rdtype for rd in rrset]
        kept: list[str] = []
        for text in dict.fromkeys(answers):
            ip = str(ipaddress.ip_address(text))  # one spelling of each address, as elsewhere
            if addresses.is_connectable(ip, self.allow_networks) and ip not in kept:
                kept.append(ip)
        return kept[:MAX_ADDRESSES]


class TokenBucket:
    """At most ``rate`` takes a second, bursts of at most a tenth of a second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens, self.stamp = 1.0, time.monotonic()

    async def take(self) -> None:
        """Wait for a token and take it."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclasses.dataclass
class Summary:
    """What one pass did: names tried, answered with addresses, failed, distinct addresses."""

    names: int = 0
    answered: int = 0
    failures: int = 0
    addresses: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"resolved {self.names} names: {self.answered} answered, {self.addresses} addresses, "
            f"{self.failures} failures, {self.seconds:.1f} seconds"
        )


@dataclasses.dataclass
class Pass:
    """One walk over the names due (resolved before ``cutoff``, or never), oldest first."""

    store: Any  # collector.store.Store: read() and write() in worker threads
    resolver: Resolver
    qps: float
    cutoff: datetime.datetime
    progress: Progress | None = None
    counted: Counted | None = None
    stop: asyncio.Event | None = None
    in_flight: int = IN_FLIGHT

    async def run(self) -> Summary:
        """Resolve every name due; return the summary. Set ``stop`` to end early: lookups in
        flight are dropped, answers already in are recorded."""
        started = time.monotonic()
        summary = Summary()
        total = await asyncio.to_thread(self.store.read, index.count_due, self.cutoff)
        self._answers: dict[int, list[str]] = {}
        self._failed = 0
        self._seen: set[str] = set()
        bucket, slots = TokenBucket(self.qps), asyncio.Semaphore(self.in_flight)
        tasks: set[asyncio.Task[None]] = set()
        shown, after = started, None
        try:
            while not self._stopped():
                page = await asyncio.to_thread(self.store.read, index.due, self.cutoff, after, PAGE)
                if not page:
                    break
                after = page[-1]
                for due in page:
                    await bucket.take()
                    await slots.acquire()
                    if self._stopped():
                        slots.release()
                        break
                    task = asyncio.create_task(self._one(due, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    if len(self._answers) >= FLUSH:
                        await self._flush(summary)
                    if self.progress and time.monotonic() - shown >= PROGRESS_SECONDS:
                        shown = time.monotonic()
                        done = summary.names + len(self._answers) + self._failed
                        self.progress(done, total, shown - started)
            if self._stopped():
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.resolver.close()
            await self._flush(summary)
        summary.addresses = len(self._seen)
        summary.seconds = time.monotonic() - started
        return summary

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def _one(self, due: index.Due, slots: asyncio.Semaphore) -> None:
        try:
            found = await self.resolver.lookup(due.name)
        finally:
            slots.release()
        if found is None:
            self._failed += 1
        else:
            self._answers[due.id] = found

    async def _flush(self, summary: Summary) -> None:
        """Record the answers in (one time ``t`` for all) and count them."""
        answers, failed = self._answers, self._failed
        self._answers, self._failed = {}, 0
        if answers:
            t = datetime.datetime.now(datetime.UTC)
            await asyncio.to_thread(self.store.write, index.record, t, answers)
        with_addresses = sum(1 for ips in answers.values() if ips)
        for ips in answers.values():
            self._seen.update(ips)
        summary.names += len(answers) + failed
        summary.answered += with_addresses
        summary.failures += failed
        if self.counted is not None:
            for result, n in zip(
                RESULTS, (with_addresses, len(answers) - with_addresses, failed), strict=True
            ):
                self.counted(result, n)


def resolver_of(address: str, allow_networks: Sequence[Network]) -> Resolver:
    """Return the Resolver at ``address`` ("IP", "IP:PORT" or "[IPv6]:PORT", already checked)."""
    from probe import kinds

    ip, port = kinds.parse_resolver(address)
    return Resolver(ip, port, tuple(allow_networks))


def eta_line(done: int, total: int, seconds: float) -> str:
    """Return a progress line: done/total, rate, time left."""
    rate = done / seconds if seconds > 0 else 0.0
    left = (total - done) / rate if rate > 0 else float("inf")
    eta = "?" if left == float("inf") else str(datetime.timedelta(seconds=round(max(left, 0))))
    return f"resolving: {done}/{total} names, {rate:.0f}/s, eta {eta}"
