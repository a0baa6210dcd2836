"""The only composer of steps: DNS -> TCP, TLS and HTTP on one connection -> the SNI swap.

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
from probe.addresses import Network, is_connectable, is_ip
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
from probe.steps import connection, dns, tls
from probe.times import elapsed_ms, rfc3339

MAX_REDIRECTS = 10
NEUTRAL_SNI = "www.example.com"
# the connection step returns this long before the target's time runs out, with what it
# measured, rather than being cancelled with it (cancelling loses its TCP and TLS results)
RETURN_MARGIN_SECONDS = 0.1

StepMap = dict[str, Callable[[Any], Awaitable[Any]]]
DEFAULT_STEPS: StepMap = {
    "dns": dns.measure,
    # the same DNS step, returning at the first reply while it listens on for an injected
    # second one: the listen then costs no time before TCP (docs/benchmarks.md §1.4)
    "dns_listening": dns.measure_listening,
    # TCP to every address, TLS on those that connected, and the GET on the first usable
    # one, each address on one connection (docs/benchmarks.md §1.4)
    "connection": connection.measure,
    # a handshake on its own connection: the SNI swap after a failed one
    "tls": tls.measure,
}


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

    async def settle(self) -> None:
        """Fold the second replies heard meanwhile into the DNS results (listens are short)."""
        for i, listen in self.listening:
            second = await listen
            if second is not None:
                self.dns[i] = dataclasses.replace(self.dns[i], second_reply=second)
        self.listening.clear()

    def abandon(self) -> None:
        for _, listen in self.listening:
            listen.cancel()


class Flow:
    """Measure targets with one set of options and one step map (fakes may be passed in tests)."""

    def __init__(self, options: FlowOptions, steps: StepMap | None = None) -> None:
        self.options = options
        self.steps = steps or DEFAULT_STEPS

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
        for _hop in range(MAX_REDIRECTS + 1):
            host, _, https = _split(url)
            addresses = await self._resolve(host, b)
            if dns_only:
                return
            addresses += [a for a in extra if a not in addresses]
            extra = ()  # the control's extra addresses belong to the first host only
            result = await self._connect(url, https, addresses, b)
            if result is None:
                # nothing to fetch over: the verdict reads the DNS, TCP and TLS results; on a
                # redirect hop, the request that failed there keeps the chain that led to it
                if b.redirects:
                    failure = _host_failure(b, host, addresses)
                    b.http = HTTPResult(
                        url=url, failure=failure, ms=0.0, redirects=list(b.redirects)
                    )
                return
            location = result.headers.get("location") if result.failure is None else None
            if result.status in (301, 302, 303, 307, 308) and location:
                b.redirects.append(Redirect(url=url, status=result.status, location=location))
                url = urllib.parse.urljoin(url, location)
                if _split_or_none(url) is None:
                    b.http = _with_redirects(
                        result, b, failures.unknown_text("unsupported redirect")
                    )
                    return
                continue
            b.http = _with_redirects(result, b, None)
            return
        b.http = HTTPResult(
            url=url,
            failure=failures.unknown_text("stopped after too many redirects"),
            ms=0.0,
            redirects=list(b.redirects),
        )

    async def _resolve(self, host: str, b: _Builder) -> list[str]:
        """Resolve ``host`` through the tested resolver (A and AAAA at once); return its answers."""
        if is_ip(host):
            return [host]
        o = self.options
        specs = [
            dns.DNSSpec(
                name=host,
                qtype=q,
                resolver=o.resolver,
                port=o.resolver_port,
                timeout_seconds=o.dns_timeout_seconds,
            )
            for q in o.qtypes
        ]
        if "dns_listening" in self.steps:
            pairs = await asyncio.gather(*(self.steps["dns_listening"](s) for s in specs))
            results = [r for r, _ in pairs]
            for r, listen in pairs:
                b.listening.append((len(b.dns), listen))
                b.dns.append(r)
        else:
            results = await asyncio.gather(*(self.steps["dns"](s) for s in specs))
            b.dns.extend(results)
        return _unique(a for r in results for a in r.answers)

    async def _connect(
        self, url: str, https: bool, addresses: list[str], b: _Builder
    ) -> HTTPResult | None:
        """TCP, TLS and the GET on every connectable address's connection (the GET on the first
        usable one), and the SNI swap where a handshake was cut; return the GET's result."""
        o = self.options
        result = await self.steps["connection"](
            connection.ConnectionSpec(
                url=url,
                ips=tuple(a for a in addresses if is_connectable(a, o.allow_networks)),
                tcp_timeout_seconds=o.tcp_timeout_seconds,
                tls_timeout_seconds=o.tls_timeout_seconds,
                http_timeout_seconds=o.http_timeout_seconds,
                ca_file=o.ca_file,
                body_cap_bytes=o.body_cap_bytes,
                budget_seconds=max(
                    0.0, b.deadline - asyncio.get_running_loop().time() - RETURN_MARGIN_SECONDS
                ),
            )
        )
        b.tcp.extend(result.tcp)
        start = len(b.tls)
        b.tls.extend(result.tls)  # kept even if the target's time runs out during the swaps
        if https:
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
        if first.failure is None or first.failure in failures.CERTIFICATE_FAILURES:
            return None
        o = self.options
        swap: TLSResult = await self.steps["tls"](
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
