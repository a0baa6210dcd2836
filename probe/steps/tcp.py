"""The TCP step: connect to one address and port (IPv4 or IPv6), then close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from probe import failures
from probe.record import TCPResult
from probe.times import elapsed_ms


@dataclass(frozen=True)
class TCPSpec:
    ip: str
    port: int
    timeout_seconds: float = 5.0


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def measure(spec: TCPSpec) -> TCPResult:
    """Connect to ``spec.ip``:``spec.port``; never raise on a network failure."""
    result, stream = await connect(spec)
    if stream is None:
        return result
    _, writer = stream
    writer.close()
    # the connect succeeded: how the peer takes our FIN is no part of the result
    with contextlib.suppress(*failures.NETWORK_ERRORS):
        async with asyncio.timeout(spec.timeout_seconds):
            await writer.wait_closed()
    return result


async def connect(spec: TCPSpec) -> tuple[TCPResult, Stream | None]:
    """Connect and return the result with the open connection (None when it failed), for the
    connection step to carry on with; never raise on a network failure."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            stream = await asyncio.open_connection(spec.ip, spec.port)
    except failures.NETWORK_ERRORS as exc:
        failure = failures.classify(exc)
        return TCPResult(ip=spec.ip, port=spec.port, failure=failure, ms=elapsed_ms(started)), None
    return TCPResult(ip=spec.ip, port=spec.port, failure=None, ms=elapsed_ms(started)), stream
