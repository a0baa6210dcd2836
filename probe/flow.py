"""The composer of one target's steps: DNS -> the connection step (TCP, TLS, HTTP) -> SNI swap.

The flow composes the steps into a target, and takes them as a `Steps` of fixed shape, so that
tests pass fakes without a socket. The one composer below it is the connection step, which
carries TCP, TLS and HTTP on one connection per address (probe/steps/__init__.py says why);
the flow sees that as one step and never calls the TCP or HTTP step itself.

One target is measured as OONI's Web Connectivity does, with two differences taken in DESIGN.md:
every address of the tested resolver is tried (not only the first), and a failed TLS handshake is
tried again on the same address with a neutral name, to tell SNI filtering from address blocking.
Redirects are followed here, not in the HTTP step, so that each new host goes through the tested
resolver and its TCP and TLS steps are recorded like the first host's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe import failures
from probe.addresses import Network, is_ip, select
from probe.record import (
    DNSResult,
    HTTPResult,
    Measurement,
    ProbeInfo,
    Redirect,
    Target,
    TCPResult,
    TLSResult,
    new_id,
)
from probe.resolvers import ResolverPath
from probe.steps import connection, dns, tls
from probe.times import elapsed_ms, rfc3339

# redirects followed at most (docs/spec.md, http.redirects): the first request and
# ten more; an eleventh redirect is the answer, with the failure below
MAX_REDIRECTS = 10
TOO_MANY_REDIRECTS = failures.unknown_text("stopped after too many redirects")
PORT_NOT_MEASURED = failures.unknown_text("redirect to a port not measured")
NEUTRAL_SNI = "www.example.com"
# the connection step returns this long before the target's time runs out, with what it
# measured, rather than being cancelled with it (cancelling loses its TCP and TLS results)
RETURN_MARGIN_SECONDS = 0.1

DNSStep = Callable[[dns.DNSSpec], Awaitable[tuple[DNSResult, asyncio.Future[list[str] | None]]]]
ConnectionStep = Callable[[connection.ConnectionSpec], Awaitable[connection.ConnectionResult]]
TLSStep = Callable[[tls.TLSSpec], Awaitable[TLSResult]]
# a DNS lookup started and not yet collected: its result, and its listen for a second reply
Pending = asyncio.Future[tuple[DNSResult, asyncio.Future[list[str] | None]]]


@dataclass(frozen=True)
class Steps:
    """The steps the flow composes, one field each: tests pass fakes of the same shapes."""

    # the DNS step returning at the first reply while it listens on for an injected second
    # one: the listen then costs no time before TCP (docs/benchmarks.md §5)
    dns: DNSStep = dns.measure_listening
    # TCP to every address, TLS on those that connected, and the GET on the first usable
    # one, each address on one connection (docs/benchmarks.md §5)
    connection: ConnectionStep = connection.measure
    # a handshake on its own connection: the SNI swap after a failed one
    tls: TLSStep = tls.measure


DEFAULT_STEPS = Steps()


@dataclass(frozen=True)
class FlowOptions:
    """Where and how to measure: the tested resolver, timeouts, trust and the address policy."""

    resolver: str
    resolver_port: int = 53
    dns_timeout_seconds: float = 5.0
    tcp_timeout_seconds: float = 5.0
    tls_timeout_seconds: float = 5.0
    http_timeout_seconds: float = 10.0
    target_timeout_seconds: float = 30.0
    ca_file: str | None = None
    allow_networks: tuple[Network, ...] = ()
    body_cap_bytes: int = 512 * 1024
    neutral_sni: str = NEUTRAL_SNI
    qtypes: tuple[str, ...] = ("A", "AAAA")
    # the first N connectable addresses of each family, in answer order, are dialled per host
    # (and N more of those the caller adds); None: every address, as a probe does (DESIGN.md)
    addresses_per_family: int | None = None
    # the ports a redirect may lead to, besides the target's own; None: any port
    redirect_ports: tuple[int, ...] | None = None
    # the resolver paths, the primary first (its answers drive TCP, TLS and HTTP); every path
    # resolves the target's name. Empty: one unnamed UDP path, ``resolver`` at ``resolver_port``
    paths: tuple[ResolverPath, ...] = ()

    def resolver_paths(self) -> tuple[ResolverPath | None, ...]:
        """The paths to resolve through: (None,) stands for the one unnamed resolver."""
        return self.paths or (None,)


@dataclass
class _Builder:
    """The partial record of one target: kept whole when the target's time runs out."""

    dns: list[DNSResult] = field(default_factory=list)
    tcp: list[TCPResult] = field(default_factory=list)
    tls: list[TLSResult] = field(default_factory=list)
    http: HTTPResult | None = None
    redirects: list[Redirect] = field(default_factory=list)
    # when the target's time runs out (the event loop's clock)
    deadline: float = float("inf")
    # (index in dns, the DNS step's listen for a second reply) still going on
    listening: list[tuple[int, asyncio.Future[list[str] | None]]] = field(default_factory=list)
    # every DNS lookup started: those still going on when the target ends are cancelled
    lookups: list[Pending] = field(default_factory=list)

    async def settle(self) -> None:
        """Fold the second replies heard meanwhile into the DNS results (listens are short)."""
        for i, listen in self.listening:
            second = await listen
            if second is not None:
                self.dns[i] = dataclasses.replace(self.dns[i], second_reply=second)
        self.listening.clear()

    def abandon(self) -> None:
        self.stop_lookups()
        for _, listen in self.listening:
            listen.cancel()

    def stop_lookups(self, lookups: Sequence[Pending] | None = None) -> list[str]:
        """Keep those of ``lookups`` (default: every one left) that finished uncollected, cancel
        the others; return the answers kept."""
        chosen = list(self.lookups if lookups is None else lookups)
        answers: list[str] = []
        for lookup in chosen:
            self.lookups.remove(lookup)
            if lookup.done() and not lookup.cancelled() and lookup.exception() is None:
                self.keep(lookup.result())
                answers += lookup.result()[0].answers
            else:
                lookup.cancel()
        return _unique(answers)

    def keep(self, found: tuple[DNSResult, asyncio.Future[list[str] | None]]) -> None:
        """Keep a lookup's result in the record, and its listen for a second reply."""
        result, listen = found
        self.listening.append((len(self.dns), listen))
        self.dns.append(result)


class Flow:
    """Measure targets with one set of options and one step map (fakes may be passed in tests)."""

    def __init__(self, options: FlowOptions, steps: Steps = DEFAULT_STEPS) -> None:
        self.options = options
        self.steps = steps
        # connectable addresses left undialled by ``addresses_per_family``, over every measure
        self.addresses_ignored = 0

    async def measure(
        self,
        target: Target,
        probe: ProbeInfo,
        *,
        dns_only: bool = False,
        extra_addresses: Sequence[str] = (),
        gate: contextlib.AbstractAsyncContextManager[Any] | None = None,
    ) -> Measurement:
        """Measure one target within the target timeout; never raises on a network failure.

        ``gate`` (a semaphore: the concurrency budget) is held while the target uses the network,
        and released before the passive end of the DNS listens, so the next target starts.
        """
        b = _Builder()
        timed_out = False
        async with gate or contextlib.nullcontext():
            started = datetime.datetime.now(datetime.UTC)
            t0 = time.perf_counter()
            b.deadline = asyncio.get_running_loop().time() + self.options.target_timeout_seconds
            try:
                async with asyncio.timeout(self.options.target_timeout_seconds):
                    await self._run(target, b, dns_only, extra_addresses)
            except TimeoutError:
                timed_out = True
                b.stop_lookups()
            except BaseException:
                b.abandon()  # cancelled: stop the DNS listens too
                raise
        await b.settle()
        if timed_out and not dns_only and b.http is None:
            b.http = HTTPResult(
                url=target.url,
                failure=failures.TIMEOUT,
                ms=elapsed_ms(t0),
                redirects=list(b.redirects),
            )
        return Measurement(
            id=new_id(),
            probe=probe,
            target=target,
            started_at=rfc3339(started, "milliseconds"),
            duration_ms=elapsed_ms(t0),
            dns=b.dns,
            tcp=b.tcp,
            tls=b.tls,
            http=b.http,
        )

    async def _run(
        self,
        target: Target,
        b: _Builder,
        dns_only: bool,
        extra: Sequence[str],
    ) -> None:
        url = target.url
        ports = self._ports(url)
        while True:
            host, _, https = _split(url)
            answers, others = await self._resolve(host, b, first=not b.redirects)
            if dns_only or not answers:
                extra = [*extra, *await self._collect(others, b)]
                others = []
                if dns_only:
                    return
            # the control's extra addresses belong to the first host only
            addresses = self._dialled(answers) + self._dialled(
                _unique(a for a in extra if a not in answers)
            )
            extra = ()
            result = await self._connect_with_others(url, https, addresses, others, b)
            if result is None:
                # nothing to fetch over: the verdict reads the DNS, TCP and TLS results; on a
                # redirect hop, the request that failed there keeps the chain that led to it
                if b.redirects:
                    failure = _host_failure(b, host, addresses)
                    b.http = HTTPResult(
                        url=url, failure=failure, ms=0.0, redirects=list(b.redirects)
                    )
                return
            nxt = self._follow(url, result, b, ports)
            if nxt is None:
                return
            url = nxt

    def _follow(
        self, url: str, result: HTTPResult, b: _Builder, ports: frozenset[int] | None
    ) -> str | None:
        """Return the URL a redirect leads to, or None when ``result`` is the answer (then
        ``b.http`` is set: the page, or the redirect not followed and why)."""
        location = result.headers.get("location") if result.failure is None else None
        if result.status not in (301, 302, 303, 307, 308) or not location:
            b.http = _with_redirects(result, b, None)
            return None
        if len(b.redirects) == MAX_REDIRECTS:
            b.http = _with_redirects(result, b, TOO_MANY_REDIRECTS)
            return None
        b.redirects.append(Redirect(url=url, status=result.status, location=location))
        nxt = urllib.parse.urljoin(url, location)
        parts = _split_or_none(nxt)
        if parts is None:
            b.http = _with_redirects(result, b, failures.unknown_text("unsupported redirect"))
            return None
        if ports is not None and parts[1] not in ports:
            b.http = _with_redirects(result, b, PORT_NOT_MEASURED)
            return None
        return nxt

    def _ports(self, url: str) -> frozenset[int] | None:
        """The ports this target's redirects may lead to: its own and the allowed ones."""
        allowed = self.options.redirect_ports
        return None if allowed is None else frozenset((*allowed, _split(url)[1]))

    def _dialled(self, addresses: Sequence[str]) -> list[str]:
        """The addresses to dial among ``addresses``; count those the cap leaves out."""
        o = self.options
        dialled, ignored = select(addresses, o.allow_networks, o.addresses_per_family)
        self.addresses_ignored += ignored
        return dialled

    async def _resolve(
        self, host: str, b: _Builder, first: bool
    ) -> tuple[list[str], list[Pending]]:
        """Resolve ``host`` (A and AAAA at once) through the primary path; for the target's own
        name, start the other paths' lookups too. Return the primary's answers, and the other
        lookups still going on (the caller collects them: they overlap the primary's TCP, TLS
        and GET instead of delaying them)."""
        if is_ip(host):
            return [host], []
        paths = self.options.resolver_paths()
        started: list[Pending] = [
            asyncio.ensure_future(self.steps.dns(self._spec(host, q, p)))
            for p in paths[: None if first else 1]
            for q in self.options.qtypes
        ]
        b.lookups.extend(started)
        mine = len(self.options.qtypes)
        answers = await self._collect(started[:mine], b)
        return answers, started[mine:]

    async def _collect(self, lookups: Sequence[Pending], b: _Builder) -> list[str]:
        """Wait for ``lookups``, keep their results in the record; return their answers."""
        pairs = [await lookup for lookup in lookups]
        for lookup, found in zip(lookups, pairs, strict=True):
            b.lookups.remove(lookup)
            b.keep(found)
        return _unique(a for r, _ in pairs for a in r.answers)

    async def _connect_with_others(
        self, url: str, https: bool, addresses: list[str], others: Sequence[Pending], b: _Builder
    ) -> HTTPResult | None:
        """Connect (and GET) over the primary's addresses while the other paths resolve; then
        connect, without a GET, to the addresses only they answered: "DNS only" blocking is
        told from "DNS and address" blocking (the GET stays the primary's)."""
        if not others:
            return await self._connect(url, https, addresses, b)
        # the others may take the target's time, not more: the primary's GET must be kept
        left = max(0.0, b.deadline - asyncio.get_running_loop().time() - RETURN_MARGIN_SECONDS)
        result, _ = await asyncio.gather(
            self._connect(url, https, addresses, b), asyncio.wait(others, timeout=left)
        )
        answered = b.stop_lookups(others)
        late = self._dialled([a for a in answered if a not in addresses])
        if late:
            await self._connect(url, https, late, b, fetch=False)
        return result

    def _spec(self, host: str, qtype: str, path: ResolverPath | None) -> dns.DNSSpec:
        """The DNS step's spec for one name, one type, one path."""
        o = self.options
        if path is None:
            return dns.DNSSpec(
                name=host, qtype=qtype, resolver=o.resolver, port=o.resolver_port,
                timeout_seconds=o.dns_timeout_seconds,
            )  # fmt: skip
        return dns.DNSSpec(
            name=host, qtype=qtype, resolver=path.address, port=path.port,
            timeout_seconds=o.dns_timeout_seconds, transport=path.transport, path=path.name,
            hostname=path.hostname, url=path.url, ca_file=o.ca_file,
        )  # fmt: skip

    async def _connect(
        self, url: str, https: bool, addresses: list[str], b: _Builder, fetch: bool = True
    ) -> HTTPResult | None:
        """TCP, TLS and the GET on every connectable address's connection (the GET on the first
        usable one), and the SNI swap where a handshake was cut; return the GET's result."""
        o = self.options
        result = await self.steps.connection(
            connection.ConnectionSpec(
                url=url,
                ips=tuple(addresses),
                tcp_timeout_seconds=o.tcp_timeout_seconds,
                tls_timeout_seconds=o.tls_timeout_seconds,
                http_timeout_seconds=o.http_timeout_seconds,
                ca_file=o.ca_file,
                body_cap_bytes=o.body_cap_bytes,
                budget_seconds=max(
                    0.0, b.deadline - asyncio.get_running_loop().time() - RETURN_MARGIN_SECONDS
                ),
                fetch=fetch,
            )
        )
        b.tcp.extend(result.tcp)
        start = len(b.tls)
        b.tls.extend(result.tls)  # kept even if the target's time runs out during the swaps
        if https and any(_cut(t) for t in result.tls):  # no task for a swap not needed
            swaps = await asyncio.gather(*(self._swap(t) for t in result.tls))
            b.tls[start:] = [
                t
                for first, swap in zip(result.tls, swaps, strict=True)
                for t in ([first] if swap is None else [first, swap])
            ]
        http_result: HTTPResult | None = result.http
        return http_result

    async def _swap(self, first: TLSResult) -> TLSResult | None:
        """If a handshake with the real name was cut, try again with a neutral name (the SNI
        swap: SNI filtering cuts only the first); None when there is nothing to tell."""
        if not _cut(first):
            return None
        o = self.options
        swap: TLSResult = await self.steps.tls(
            tls.TLSSpec(
                ip=first.ip,
                port=first.port,
                sni=o.neutral_sni,
                timeout_seconds=o.tls_timeout_seconds,
                ca_file=o.ca_file,
                verify=False,
                neutral=True,
            )
        )
        return swap


def _cut(first: TLSResult) -> bool:
    """Tell a handshake that failed short of a certificate (the SNI swap's case)."""
    return first.failure is not None and first.failure not in failures.CERTIFICATE_FAILURES


def _host_failure(b: _Builder, host: str, addresses: list[str]) -> str:
    """The failure that stopped ``host``: its TLS handshake, else its TCP connect, else DNS."""
    tls_failed = [t.failure for t in b.tls if t.sni == host and not t.neutral and t.failure]
    tcp_failed = [t.failure for t in b.tcp if t.ip in addresses and t.failure]
    dns_failed = [r.failure for r in b.dns if r.name == host and r.qtype == "A" and r.failure]
    for failed in (tls_failed, tcp_failed, dns_failed):
        if failed:
            return failed[0]
    return failures.unknown_text("no address the probe may connect to")


def _with_redirects(result: HTTPResult, b: _Builder, failure: str | None) -> HTTPResult:
    changes: dict[str, Any] = {"redirects": list(b.redirects)}
    if failure is not None:
        changes["failure"] = failure
    return dataclasses.replace(result, **changes)


def _split(url: str) -> tuple[str, int, bool]:
    parts = _split_or_none(url)
    if parts is None:
        raise ValueError(f"not an http or https URL: {url!r}")
    return parts


def _split_or_none(url: str) -> tuple[str, int, bool] | None:
    """Return (host, port, is_https) of an http(s) URL, or None for anything else."""
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    https = u.scheme == "https"
    return u.hostname, port or (443 if https else 80), https


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
