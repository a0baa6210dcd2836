"""The census sweep (docs/spec.md, "Sweeps"): each published address reached by TCP and TLS.

Per address: a TCP connect to ip:port, then on that connection a TLS handshake with the given
SNI and no certificate check (reaching a handshake is what counts), and only when that fails a
new connection and a handshake with the neutral SNI, which tells address blocking from SNI
filtering. New connections start at most ``rate`` a second (a token bucket), at most
``concurrency`` addresses at once; no address starts once the byte budget is spent or the
deadline passed (each is counted as skipped). Results are compact entries, not records: a
sweep of 2,000 addresses holds 2,000 small objects, no certificate and no body.

The connections are opened here and not through probe/steps/tcp.py and tls.py: those build
stream readers and writers over asyncio's SSL protocol, verify certificates, parse the peer's
certificate and keep it for the record; a sweep needs none of it. A handshake here is a
non-blocking ``ssl.SSLSocket`` driven from the event loop's readiness callbacks: asyncio's
pure-Python SSL protocol cost as much CPU again as OpenSSL's handshake itself
(docs/bench/census-sweep.md). The failure strings are the same (probe/failures.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from probe import failures
from probe.address_list import Address
from probe.costs import TCP_BYTES, TLS_BYTES
from probe.record import ProbeInfo
from probe.times import rfc3339

NEUTRAL_SNI = "www.example.com"
ENTRIES_PER_SWEEP = 1000  # docs/spec.md: at most 1,000 entries a sweep document
MAX_CONCURRENCY = 256
ADDRESS_BYTES = TCP_BYTES + TLS_BYTES  # what one address's first connection may cost


@dataclass(slots=True)
class Entry:
    """One address's outcome: a failure string per step run (None: it succeeded)."""

    address: Address
    steps: int = 0  # how many of tcp, tls, tls_neutral ran, in that order
    tcp: str | None = None
    tls: str | None = None
    tls_neutral: str | None = None
    ms: int = 0

    @property
    def failed(self) -> bool:
        return self.tcp is not None or self.tls is not None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a sweep document holds it: a step not run is absent, not null."""
        a = self.address
        doc: dict[str, Any] = {"ip": a.ip, "port": a.port, "sni": a.sni, "tcp": self.tcp}
        if self.steps >= 2:
            doc["tls"] = self.tls
        if self.steps >= 3:
            doc["tls_neutral"] = self.tls_neutral
        doc["ms"] = self.ms
        return doc


@dataclass(frozen=True)
class SweepOptions:
    rate: float = 20.0  # new connections a second
    tcp_timeout_seconds: float = 5.0
    tls_timeout_seconds: float = 5.0
    budget_bytes: int | None = None  # None: no cap
    deadline_seconds: float | None = None  # no address starts later; None: none
    concurrency: int | None = None  # None: enough for the rate never to wait for a slot

    def slots(self) -> int:
        """Return the addresses swept at once: the rate times an address's longest time."""
        if self.concurrency is not None:
            return self.concurrency
        longest = self.tcp_timeout_seconds + 2 * self.tls_timeout_seconds
        return max(1, min(MAX_CONCURRENCY, math.ceil(self.rate * longest)))


@dataclass
class Sweep:
    """One sweep: its entries in the published order, and what it left out."""

    started_at: str
    entries: list[Entry] = field(default_factory=list)
    duration_ms: int = 0
    skipped_budget: int = 0
    skipped_deadline: int = 0
    bytes_estimated: int = 0

    def failures(self) -> int:
        return sum(e.failed for e in self.entries)


class RateLimiter:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up; one a connection."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self._tokens, self._last = burst, clock()
        self._lock = asyncio.Lock()  # takers wait in line, each for its own token

    async def take(self) -> None:
        """Return once a token is taken, waiting for one to accrue when none is left."""
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                await self.sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now


async def sweep(
    targets: Iterable[Address],
    options: SweepOptions,
    limiter: RateLimiter | None = None,
    on_entry: Callable[[Entry], None] | None = None,
) -> Sweep:
    """Sweep ``targets``; return their entries in order. Never raises on a network failure."""
    limiter = limiter or RateLimiter(options.rate)
    result = Sweep(started_at=rfc3339(time.time()))
    started = time.monotonic()
    deadline = None if options.deadline_seconds is None else started + options.deadline_seconds
    slots: list[Entry | None] = []
    queue = iter(enumerate(targets))

    async def worker() -> None:
        for i, address in queue:
            slots.extend([None] * (i + 1 - len(slots)))
            # checked again once the token is had: the other workers spent meanwhile
            if _past(result, options, deadline):
                continue
            await limiter.take()
            if _past(result, options, deadline):
                continue
            slots[i] = entry = await _sweep_one(address, options, limiter, result)
            if on_entry is not None:
                on_entry(entry)

    await asyncio.gather(*(worker() for _ in range(options.slots())))
    result.entries = [e for e in slots if e is not None]
    result.duration_ms = round((time.monotonic() - started) * 1000)
    return result


def _past(result: Sweep, options: SweepOptions, deadline: float | None) -> bool:
    """Tell (and count) whether the budget or the deadline keeps the next address from starting."""
    if options.budget_bytes is not None and result.bytes_estimated >= options.budget_bytes:
        result.skipped_budget += 1
        return True
    if deadline is not None and time.monotonic() > deadline:
        result.skipped_deadline += 1
        return True
    return False


async def _sweep_one(
    address: Address, options: SweepOptions, limiter: RateLimiter, result: Sweep
) -> Entry:
    started = time.perf_counter()
    entry = Entry(address, steps=1)
    opened: list[socket.socket] = []  # every socket of the address, closed before returning
    # charged before the first await, so that workers starting meanwhile see it in the budget
    result.bytes_estimated += ADDRESS_BYTES
    try:
        entry.tcp = await _connect(address, options.tcp_timeout_seconds, opened)
        if entry.tcp is not None:
            result.bytes_estimated -= TLS_BYTES  # no handshake was sent
        else:
            entry.steps = 2
            entry.tls = await _handshake(opened, address.sni, options.tls_timeout_seconds)
            if entry.tls is not None:
                entry.steps = 3
                await limiter.take()
                result.bytes_estimated += ADDRESS_BYTES
                entry.tls_neutral = await _dial_tls(address, NEUTRAL_SNI, options, opened)
        entry.ms = round((time.perf_counter() - started) * 1000)
        for sock in opened:  # after the entry's time: how the peer takes our close is no part
            await _close(sock, options.tls_timeout_seconds)
    finally:
        for sock in opened:  # a no-op once closed; on a cancellation, the only close
            sock.close()
    return entry


async def _connect(
    address: Address, timeout_seconds: float, opened: list[socket.socket]
) -> str | None:
    """Connect a non-blocking socket (added to ``opened``); return the failure, or None."""
    family = socket.AF_INET6 if ":" in address.ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    opened.append(sock)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout_seconds):
            await asyncio.get_running_loop().sock_connect(sock, (address.ip, address.port))
    except failures.NETWORK_ERRORS as exc:
        return failures.classify(exc)
    return None


async def _handshake(opened: list[socket.socket], sni: str, timeout_seconds: float) -> str | None:
    """Handshake under ``sni`` on the last socket of ``opened`` (replaced there by its TLS
    socket); return the failure, or None."""
    tls = _context().wrap_socket(opened[-1], server_hostname=sni, do_handshake_on_connect=False)
    opened[-1] = tls
    try:
        async with asyncio.timeout(timeout_seconds):
            await _drive(tls, tls.do_handshake)
    except failures.NETWORK_ERRORS as exc:
        return failures.classify(exc)
    return None


async def _drive(tls: ssl.SSLSocket, step: Callable[[], object]) -> None:
    """Call ``step`` (a TLS operation on a non-blocking socket) until it completes, waiting
    for the socket to be readable or writable as OpenSSL asks."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            step()
            return
        except ssl.SSLWantReadError:
            await _ready(tls, loop.add_reader, loop.remove_reader)
        except ssl.SSLWantWriteError:
            await _ready(tls, loop.add_writer, loop.remove_writer)


async def _ready(
    sock: socket.socket, add: Callable[..., object], remove: Callable[[int], object]
) -> None:
    """Wait until the event loop sees ``sock`` ready (for what ``add`` registers)."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


async def _dial_tls(
    address: Address, sni: str, options: SweepOptions, opened: list[socket.socket]
) -> str | None:
    """Connect anew and handshake under ``sni``; return the first failure, or None."""
    failure = await _connect(address, options.tcp_timeout_seconds, opened)
    if failure is not None:
        return failure
    return await _handshake(opened, sni, options.tls_timeout_seconds)


async def _close(sock: socket.socket, timeout_seconds: float) -> None:
    """Close a completed TLS connection as a client does: close_notify, a FIN, and the peer's
    end read to its EOF (within the timeout), so that no RST answers what it still sends
    (TLS 1.3 session tickets); any other socket is just closed."""
    if not isinstance(sock, ssl.SSLSocket) or sock.fileno() < 0 or sock.version() is None:
        sock.close()  # no handshake completed: nothing to say to the peer
        return
    with contextlib.suppress(*failures.NETWORK_ERRORS):
        sock.unwrap()  # sends close_notify; the peer's own is read below, as raw bytes
    with contextlib.suppress(*failures.NETWORK_ERRORS):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        async with asyncio.timeout(timeout_seconds):
            while await _read(sock):
                pass
    sock.close()


async def _read(sock: socket.socket) -> bytes:
    """Read raw bytes once the socket is readable (b"": the peer's FIN)."""
    loop = asyncio.get_running_loop()
    await _ready(sock, loop.add_reader, loop.remove_reader)
    return socket.socket.recv(sock, 4096)


_CONTEXT: list[ssl.SSLContext] = []


def _context() -> ssl.SSLContext:
    """Return the one client context: no certificate check, no store loaded (none is needed)."""
    if not _CONTEXT:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _CONTEXT.append(context)
    return _CONTEXT[0]


def documents(
    result: Sweep, probe: ProbeInfo, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
) -> list[dict[str, Any]]:
    """Return the sweep documents of ``result``: its entries split at 1,000 a document, each
    with its own id and the whole sweep's start and duration. No entries: no document."""
    about = {
        "id": probe.id,
        "software": probe.software,
        "asn": probe.asn,
        "network": probe.network,
        "cc": probe.cc,
    }
    return [
        {
            "schema": 1,
            "id": new_id(),
            "probe": dict(about),
            "started_at": result.started_at,
            "duration_ms": result.duration_ms,
            "entries": [e.to_dict() for e in result.entries[i : i + ENTRIES_PER_SWEEP]],
        }
        for i in range(0, len(result.entries), ENTRIES_PER_SWEEP)
    ]
