"""The control vantage: probe.flow run from the collector's network, bounded, cached briefly.

The control is a probe on an unfiltered network: the same code in another place (DESIGN.md). It
dials the addresses the probe reports too, so that the verdict can tell a geo-CDN answer (a valid
certificate for the name on the probe's address) from a lie.

Anyone who reaches the collector can ask it to measure, so every request is bounded
(docs/security.md): targets per request, addresses dialled per name, connections open at once
per request and in the whole collector, ports, redirects, bytes read; and the answer carries what
the verdict needs of a page (status, title, body length and hash), never the page itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import ipaddress
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from collector.config import CollectorConfig
from probe import __version__, addresses
from probe import config as probe_config
from probe.addresses import Network
from probe.flow import DEFAULT_STEPS, Flow, FlowOptions, Steps
from probe.record import Control, Measurement, ProbeInfo, Target
from probe.watchlist import Watchlist, normalize_url

# The defaults of the control.* caps (configs/collector.example.yaml).
# Addresses dialled per name and family, the first in answer order (as many again of those the
# probe reports): one name with 1,000 A records made one request open 1,000 connections.
MAX_ADDRESSES_PER_FAMILY = 8
# Connections one request may hold open at once (a connection step takes one per address, so
# at least 4 x MAX_ADDRESSES_PER_FAMILY: the name's and the probe's, of both families), and
# the whole collector, every request together.
MAX_CONNECTIONS_PER_REQUEST = 4 * MAX_ADDRESSES_PER_FAMILY
MAX_CONNECTIONS_IN_FLIGHT = 256
# Addresses one request may dial, all told (SNI swaps, at most one per handshake, aside): 20
# targets of 11 hosts each could otherwise ask for 20 x (32 + 10 x 16) = 3,840. A probe asks
# for one target a request.
MAX_DIALS_PER_REQUEST = 512
# A probe's own body cap: the verdict compares the control's body length with the probe's.
BODY_CAP_BYTES = 512 * 1024
# The ports measured (a redirect included); a watchlist URL may name its own.
PORTS = (80, 443)
# Addresses a probe may report for one target (past it the request is refused).
MAX_ADDRESSES_PER_TARGET = 32


def control_options(cfg: CollectorConfig) -> FlowOptions:
    """The control vantage measures like a probe, through the collector's own resolver."""
    ip, port = probe_config.parse_resolver(cfg.control_resolver or probe_config.system_resolver())
    nets = addresses.networks(cfg.allow_networks)
    return FlowOptions(resolver=ip, resolver_port=port, ca_file=cfg.ca_file, allow_networks=nets)


def vantage(cfg: CollectorConfig) -> ControlVantage:
    """The control vantage ``cfg`` describes, within its caps."""
    return ControlVantage(
        control_options(cfg),
        cfg.control_concurrency,
        cfg.control_cache_seconds,
        connections_per_request=cfg.control_connections_per_request,
        connections_in_flight=cfg.control_connections_in_flight,
        dials_per_request=cfg.control_dials_per_request,
        addresses_per_family=cfg.control_addresses_per_family,
    )


def bounded(
    options: FlowOptions, addresses_per_family: int = MAX_ADDRESSES_PER_FAMILY
) -> FlowOptions:
    """Return ``options`` within the control's bounds, whatever the caller set."""
    return dataclasses.replace(
        options,
        addresses_per_family=addresses_per_family,
        redirect_ports=PORTS,
        body_cap_bytes=min(options.body_cap_bytes, BODY_CAP_BYTES),
    )


class ControlRequestError(ValueError):
    """A control request the collector refuses (answered 400 with this message)."""


@dataclass(frozen=True)
class ControlTarget:
    url: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ControlAnswer:
    """One Control per target, in order, and the addresses left undialled by the caps."""

    controls: list[Control]
    addresses_ignored: int


def watchlist_urls(watchlist: Watchlist | None) -> frozenset[str]:
    """The URLs of a watchlist: those may name a port other than 80 and 443."""
    return frozenset(t.url for t in watchlist.targets()) if watchlist is not None else frozenset()


def parse_request(
    body: object,
    max_targets: int,
    known_urls: frozenset[str] = frozenset(),
    allow_networks: Sequence[Network] = (),
) -> list[ControlTarget]:
    """Validate the JSON body of POST /api/v1/control: {"targets": [{"url", "addresses"}]}."""
    if not isinstance(body, dict) or not isinstance(body.get("targets"), list):
        raise ControlRequestError("body: expected an object with a 'targets' array")
    targets = body["targets"]
    if not 0 < len(targets) <= max_targets:
        raise ControlRequestError(f"targets: give between 1 and {max_targets} targets")
    out = []
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or not isinstance(t.get("url"), str):
            raise ControlRequestError(f"targets[{i}].url: missing or not a string")
        _check_url(t["url"], f"targets[{i}].url", known_urls, allow_networks)
        addrs = t.get("addresses", [])
        if not isinstance(addrs, list) or len(addrs) > MAX_ADDRESSES_PER_TARGET:
            raise ControlRequestError(
                f"targets[{i}].addresses: expected at most {MAX_ADDRESSES_PER_TARGET} addresses"
            )
        for a in addrs:
            try:
                ipaddress.ip_address(a)
            except (ValueError, TypeError):
                raise ControlRequestError(
                    f"targets[{i}].addresses: not an IP address: {a!r}"
                ) from None
        # in the probe's order: the cap keeps the first of each family
        out.append(ControlTarget(t["url"], tuple(dict.fromkeys(addrs))))
    return out


def _check_url(
    url: str, where: str, known_urls: frozenset[str], allow_networks: Sequence[Network]
) -> None:
    """Refuse what a watchlist would refuse (probe/watchlist.py), and ports beyond PORTS."""
    if not url.startswith(("http://", "https://")):
        raise ControlRequestError(f"{where}: not an http or https URL")
    try:
        normal = normalize_url(url, allow_networks)
    except ValueError as e:
        raise ControlRequestError(f"{where}: {e}") from None
    port = urllib.parse.urlsplit(normal).port
    if port is not None and port not in PORTS and normal not in known_urls:
        raise ControlRequestError(
            f"{where}: port {port} is not measured (only 80 and 443, or a watchlist URL's own port)"
        )


class Permits:
    """A budget of open connections, taken several at once (one per address), in turn."""

    def __init__(self, total: int) -> None:
        self.total = self.free = total
        self._queue: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        """Hold ``n`` permits (at most the whole budget) while the block runs."""
        n = min(n, self.total)
        await self._acquire(n)
        try:
            yield
        finally:
            self.free += n
            self._wake()

    async def _acquire(self, n: int) -> None:
        if not self._queue and self.free >= n:
            self.free -= n
            return
        entry = (n, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():
                self.free += n  # granted as it was cancelled: give the permits back
            elif entry in self._queue:
                self._queue.remove(entry)
            self._wake()
            raise

    def _wake(self) -> None:
        # first come, first served: a step waiting for 32 is not overtaken by steps of 1
        while self._queue and self._queue[0][0] <= self.free:
            n, fut = self._queue.popleft()
            if not fut.done():
                self.free -= n
                fut.set_result(None)


class Dials:
    """The addresses a request may still dial, and how many it was refused."""

    def __init__(self, total: int) -> None:
        self.left, self.refused = total, 0

    def take(self, n: int) -> int:
        """Grant up to ``n`` dials; count the rest as refused."""
        granted = min(n, self.left)
        self.left -= granted
        self.refused += n - granted
        return granted


def gated(steps: Steps, dials: Dials, *budgets: Permits) -> Steps:
    """Return ``steps`` dialling within ``dials``, every connection they open held against each
    budget in turn."""

    @contextlib.asynccontextmanager
    async def holding(n: int) -> AsyncIterator[float]:
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            for budget in budgets:
                await stack.enter_async_context(budget.hold(n))
            yield time.monotonic() - started

    async def connection(spec: Any) -> Any:
        spec = dataclasses.replace(spec, ips=spec.ips[: dials.take(len(spec.ips))])
        async with holding(len(spec.ips)) as waited:
            if spec.budget_seconds is not None:  # the wait came out of the step's time
                spec = dataclasses.replace(
                    spec, budget_seconds=max(0.0, spec.budget_seconds - waited)
                )
            return await steps.connection(spec)

    async def tls(spec: Any) -> Any:  # the SNI swap: a connection of its own
        async with holding(1):
            return await steps.tls(spec)

    return dataclasses.replace(steps, connection=connection, tls=tls)


class ControlVantage:
    """Measure control targets with bounded concurrency and connections, and a short cache."""

    def __init__(
        self,
        options: FlowOptions,
        concurrency: int = 16,
        cache_seconds: float = 60.0,
        flow: Flow | None = None,
        steps: Steps = DEFAULT_STEPS,
        connections_per_request: int = MAX_CONNECTIONS_PER_REQUEST,
        connections_in_flight: int = MAX_CONNECTIONS_IN_FLIGHT,
        dials_per_request: int = MAX_DIALS_PER_REQUEST,
        addresses_per_family: int = MAX_ADDRESSES_PER_FAMILY,
    ) -> None:
        self.options = bounded(options, addresses_per_family)
        self.steps = steps
        self.flow = flow  # a composer given whole (tests at the seam): used as it is
        self.connections_per_request = connections_per_request
        self.dials_per_request = dials_per_request
        self.in_flight = Permits(connections_in_flight)
        self.sem = asyncio.Semaphore(concurrency)
        self.cache_seconds = cache_seconds
        self._cache: dict[ControlTarget, tuple[float, Control]] = {}
        self._inflight: dict[ControlTarget, asyncio.Future[Control]] = {}
        self.probe = ProbeInfo(software=f"surblocage-control/{__version__}")

    async def measure(self, targets: Sequence[ControlTarget]) -> ControlAnswer:
        """Return one Control per target, in order, within this request's budgets."""
        dials = Dials(self.dials_per_request)
        flow = self.flow or Flow(
            self.options,
            gated(self.steps, dials, Permits(self.connections_per_request), self.in_flight),
        )
        controls = list(await asyncio.gather(*(self._one(t, flow) for t in targets)))
        return ControlAnswer(controls, flow.addresses_ignored + dials.refused)

    async def _one(self, t: ControlTarget, flow: Flow) -> Control:
        now = time.monotonic()
        hit = self._cache.get(t)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        if t in self._inflight:  # the same target asked by many probes at once: measure once
            return await asyncio.shield(self._inflight[t])
        fut: asyncio.Future[Control] = asyncio.get_running_loop().create_future()
        self._inflight[t] = fut
        try:
            async with self.sem:
                m = await flow.measure(_target(t.url), self.probe, extra_addresses=t.addresses)
            c = to_control(m)
            self._cache[t] = (time.monotonic(), c)
            self._expire(now)
            fut.set_result(c)
            return c
        finally:
            del self._inflight[t]
            if not fut.done():
                fut.cancel()

    def _expire(self, now: float) -> None:
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_seconds}


def to_control(m: Measurement) -> Control:
    """The control's copy of a measurement: of the page, only what the verdict reads (status,
    title, body length and hash); no body, no headers, no redirect locations."""
    measured = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    http = m.http
    if http is not None:
        http = dataclasses.replace(http, headers={}, body_head=None, redirects=[])
    return Control(
        dns=m.dns, tcp=m.tcp, tls=m.tls, http=http, measured_at=measured.replace("+00:00", "Z")
    )


def reaches(c: Control) -> bool:
    """Whether a control reached its service: an HTTP answer, or without HTTP a connection."""
    if c.http is not None:
        return c.http.failure is None
    return any(t.failure is None for t in c.tcp)


def _target(url: str) -> Target:
    host = urllib.parse.urlsplit(url).hostname or ""
    return Target(service="control", url=url, domain=host, category="control")
