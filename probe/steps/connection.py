"""The connection step: TCP to every address of a host, TLS on each that connected, one GET.

One connection per address carries the TCP connect, the TLS handshake and, on the first usable
address in the resolver's order, the GET, as a browser's would. Measuring each layer on its own
connection cost six round trips after DNS where four suffice, twice the handshakes and twice the
certificate bytes (docs/benchmarks.md §5). The step returns what the record keeps of each
layer; the SNI swap and the re-fetch of a certificate that failed need connections of their own,
and only then (probe/flow.py, probe/steps/tls.py). It is the one step built of others
(``tcp.connect``, ``tls.upgrade``, ``http.fetch``: probe/steps/__init__.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from probe import failures
from probe.record import HTTPResult, TCPResult, TLSResult
from probe.steps import http, tcp, tls
from probe.steps.tcp import Stream
from probe.times import elapsed_ms


@dataclass(frozen=True)
class ConnectionSpec:
    url: str  # its host gives the SNI and the Host header; it is never resolved here
    ips: tuple[str, ...]  # every address to connect to, in the resolver's order
    tcp_timeout_seconds: float = 5.0
    tls_timeout_seconds: float = 5.0
    http_timeout_seconds: float = 10.0
    ca_file: str | None = None
    body_cap_bytes: int = 524288
    user_agent: str = "surblocage/0.1"
    budget_seconds: float | None = None  # the whole step's time; None: the timeouts' sum
    fetch: bool = True  # False: TCP and TLS only (addresses another resolver path answered)


@dataclass(frozen=True)
class ConnectionResult:
    """The record's results for one host: one TCP result per address, one TLS result per
    address that connected (https only), and the GET's (None when no address was usable)."""

    tcp: tuple[TCPResult, ...]
    tls: tuple[TLSResult, ...]
    http: HTTPResult | None


@dataclass
class _Address:
    """One address's results as they come in, and its connection until the GET is placed."""

    ip: str
    tcp: TCPResult | None = None
    tls: TLSResult | None = None
    stream: Stream | None = None
    setup_ms: float = 0.0

    def close(self) -> None:
        if self.stream is not None:
            self.stream[1].close()
            self.stream = None


async def measure(spec: ConnectionSpec) -> ConnectionResult:
    """Connect to every address (and handshake), then GET on the first usable one; never raise
    on a network failure. The other connections are closed unused.

    When ``budget_seconds`` runs out, the results measured so far are returned and the GET is a
    timeout: the flow passes what is left of the target's time, so that a slow target keeps
    its TCP and TLS results.
    """
    origin = http.Origin.of(spec.url)
    addresses = [_Address(ip) for ip in spec.ips]
    started = time.perf_counter()
    got: HTTPResult | None = None
    try:
        async with asyncio.timeout(spec.budget_seconds):
            opening = [_open(spec, origin, a) for a in addresses]
            if len(opening) == 1:  # the usual case: no task to run one coroutine
                await opening[0]
            else:
                await asyncio.gather(*opening)
            usable = next((a for a in addresses if a.stream is not None and spec.fetch), None)
            for a in addresses:
                if a is not usable:
                    a.close()
            if usable is not None and usable.stream is not None:
                reader, writer = usable.stream
                usable.stream = None  # fetch closes it
                got = await http.fetch(reader, writer, _http_spec(spec, usable.ip), usable.setup_ms)
    except failures.NETWORK_ERRORS as exc:  # the budget's TimeoutError: nothing else escapes
        got = HTTPResult(url=spec.url, failure=failures.classify(exc), ms=elapsed_ms(started))
    finally:
        for a in addresses:  # cancelled or out of time: close what did open
            a.close()
    return ConnectionResult(
        tcp=tuple(a.tcp for a in addresses if a.tcp is not None),
        tls=tuple(a.tls for a in addresses if a.tls is not None),
        http=got,
    )


async def _open(spec: ConnectionSpec, origin: http.Origin, address: _Address) -> None:
    """Connect to the address and, for https, handshake under the URL's host."""
    address.tcp, address.stream = await tcp.connect(
        tcp.TCPSpec(ip=address.ip, port=origin.port, timeout_seconds=spec.tcp_timeout_seconds)
    )
    address.setup_ms = address.tcp.ms
    if address.stream is None or not origin.https:
        return
    address.tls = await tls.upgrade(
        address.stream,
        tls.TLSSpec(
            ip=address.ip,
            port=origin.port,
            sni=origin.host,
            timeout_seconds=spec.tls_timeout_seconds,
            ca_file=spec.ca_file,
        ),
        address.tcp.ms,
    )
    if address.tls.failure is not None:
        address.stream = None  # upgrade closed it
    else:
        address.setup_ms = address.tls.ms


def _http_spec(spec: ConnectionSpec, ip: str) -> http.HTTPSpec:
    return http.HTTPSpec(
        url=spec.url,
        ip=ip,
        timeout_seconds=spec.http_timeout_seconds,
        ca_file=spec.ca_file,
        body_cap_bytes=spec.body_cap_bytes,
        user_agent=spec.user_agent,
    )
