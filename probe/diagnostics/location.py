"""Where the interference sits: the trigger repeated with IP TTL 1, 2, ... beside the same
packet for a neutral name (CenTrace), until one meets interference the other does not.

Per TTL each packet gets an ``Echo``: what came back (a DNS answer, a reset, data, the data
acknowledged, nothing) and which router said "time exceeded". The control dying at hop n
(time exceeded, nothing else) while the blocked name meets something else means a box between
hop n-1 and hop n acted. If the blocked name's packet also got hop n's time exceeded, the box
saw it before hop n's TTL check (a tap at hop n); if not, it acted after hop n-1's check, as a
filter in hop n-1's forwarding does: the hop reported is then n-1 and its address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time

from probe.diagnostics import triggers
from probe.diagnostics.capture import Capture, Packet
from probe.diagnostics.pacing import Budget
from probe.record import MAX_EVIDENCE_CHARS, Location

WAIT_SECONDS = 1.0
# once hop n's time exceeded is in, a reset or an answer from a tap has this long to follow
AFTER_ICMP_SECONDS = 0.15
# a location gives up past this long (its target's record waits for it)
MAX_SECONDS = 60.0
REACHED = ("answer", "data", "acked", "closed")


@dataclasses.dataclass(frozen=True)
class Echo:
    """What one TTL-limited packet met."""

    outcome: str  # answer | reset | data | acked | closed | silent | no_handshake
    router: str | None  # the source of the ICMP time exceeded it provoked


@dataclasses.dataclass(frozen=True)
class Trigger:
    """The request that sets off blocking: its kind, where it goes, and how to make it."""

    kind: str  # dns | tls | http
    address: str
    port: int

    def payload(self, name: str) -> bytes:
        if self.kind == "dns":
            return triggers.dns_query(name)
        if self.kind == "tls":
            return triggers.client_hello(name)
        return triggers.http_request(name)

    @property
    def cost(self) -> int:
        return 1 if self.kind == "dns" else triggers.TCP_MAX_PACKETS


@dataclasses.dataclass
class Tally:
    packets: int = 0
    malformed: int = 0


async def locate(
    trigger: Trigger, blocked: str, control: str, max_hops: int, budget: Budget
) -> tuple[Location, Tally]:
    """Find the first hop where ``blocked`` meets interference and ``control`` does not."""
    tally = Tally()
    routers: dict[int, str] = {}
    deadline = time.monotonic() + MAX_SECONDS

    def icmp(p: Packet) -> bool:
        return p.quoted is not None

    async with Capture(socket.IPPROTO_ICMP, icmp) as capture:
        for ttl in range(1, max_hops + 1):
            if time.monotonic() > deadline:
                return _not_found(trigger, f"gave up at ttl {ttl}: time"), _done(tally, capture)
            pair = []
            for name in (blocked, control):
                echo = await _echo(trigger, name, ttl, budget, capture, tally)
                if echo is None:
                    why = f"packet budget spent at ttl {ttl}"
                    return _not_found(trigger, why), _done(tally, capture)
                pair.append(echo)
            b, c = pair
            if c.router or b.router:
                routers[ttl] = c.router or b.router or ""
            if _differs(b, c):
                return _found(trigger, ttl, b, c, routers), _done(tally, capture)
            if c.router is None and c.outcome != "silent":
                # the neutral name met an end (the server, a box that treats it alike, or no
                # handshake at all): further hops tell nothing more
                why = f"ttl {ttl}: both names met the same end ({b.outcome}, {c.outcome})"
                return _not_found(trigger, why), _done(tally, capture)
    why = f"no difference up to ttl {max_hops}"
    return _not_found(trigger, why), _done(tally, capture)


def _done(tally: Tally, capture: Capture) -> Tally:
    tally.malformed += capture.malformed
    return tally


def _differs(b: Echo, c: Echo) -> bool:
    """Tell whether the blocked name met interference the control did not, at one TTL."""
    if c.outcome == "silent" and c.router is not None:  # the control died at this hop
        return b.outcome != "silent" or b.router is None
    if c.outcome in REACHED:  # the control got through: the blocked name did not
        return b.outcome in ("reset", "silent")
    return False


def _found(trigger: Trigger, ttl: int, b: Echo, c: Echo, routers: dict[int, str]) -> Location:
    tap = b.router is not None
    hop = ttl if tap or ttl == 1 else ttl - 1
    address = b.router if tap else routers.get(hop)
    seen = f"{c.outcome}" + (f" with time exceeded from {c.router}" if c.router else "")
    evidence = f"ttl {ttl}: blocked name got {b.outcome}" + (
        f" and time exceeded from {b.router}" if tap else ""
    ) + f", control got {seen}"  # fmt: skip
    return Location(
        result="found", trigger=trigger.kind, hop=hop, address=address,
        evidence=evidence[:MAX_EVIDENCE_CHARS],
    )  # fmt: skip


def _not_found(trigger: Trigger, why: str) -> Location:
    return Location(result="not_found", trigger=trigger.kind, evidence=why[:MAX_EVIDENCE_CHARS])


async def _echo(
    trigger: Trigger, name: str, ttl: int, budget: Budget, capture: Capture, tally: Tally
) -> Echo | None:
    """Send the trigger for ``name`` with IP TTL ``ttl``; None when the budget is spent."""
    cost = trigger.cost
    if not budget.reserve(cost):
        return None
    await budget.pace(cost)
    ports: list[int] = []
    stop = asyncio.Event()
    proto = socket.IPPROTO_UDP if trigger.kind == "dns" else socket.IPPROTO_TCP
    exchange = triggers.udp_exchange if trigger.kind == "dns" else triggers.tcp_exchange
    task: asyncio.Task[object] = asyncio.create_task(exchange(
        trigger.address, trigger.port, trigger.payload(name), ttl, WAIT_SECONDS, ports.append, stop
    ))  # fmt: skip
    router = await _router(task, capture, proto, ports, stop)
    result = await task
    if isinstance(result, triggers.Exchange):
        sent = result.packets
        outcome = result.outcome if result.connected else "no_handshake"
    else:
        sent = 1
        outcome = "answer" if isinstance(result, tuple) and result[1] is not None else "silent"
    budget.refund(cost - sent)
    tally.packets += sent
    return Echo(outcome, router)


async def _router(
    task: asyncio.Task[object], capture: Capture, proto: int, ports: list[int],
    stop: asyncio.Event,
) -> str | None:  # fmt: skip
    """Wait for the exchange to end, or for its time exceeded and a little more (a tap's reset
    or answer may follow it); then a little more for a time exceeded that comes after an
    answer. Return the router that sent it, if any."""

    def found() -> Packet | None:
        return capture.time_exceeded(proto, ports[0]) if ports else None

    while not task.done() and found() is None:
        capture.arrived.clear()
        if found() is not None:
            break
        waiter = asyncio.ensure_future(capture.arrived.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    if not task.done():
        await asyncio.wait([task], timeout=AFTER_ICMP_SECONDS)
        stop.set()
        await asyncio.wait([task])
    try:
        async with asyncio.timeout(AFTER_ICMP_SECONDS):
            while True:
                capture.arrived.clear()
                if found() is not None:
                    break
                await capture.arrived.wait()
    except TimeoutError:
        return None
    router = found()
    return router.source if router else None
