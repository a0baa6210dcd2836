"""The TLS step: a handshake with one address under a given SNI, and the certificate presented.

When the certificate does not verify, a second handshake without verification fetches it, so that
block pages and interception boxes can be fingerprinted by subject, issuer and SHA-256. ``ms``
covers the TCP connect and the first handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ssl
import time
from dataclasses import dataclass

import cryptography.x509

from probe import failures
from probe.record import TLSResult
from probe.times import elapsed_ms


@dataclass(frozen=True)
class TLSSpec:
    ip: str
    port: int
    sni: str
    timeout_seconds: float = 5.0
    ca_file: str | None = None
    verify: bool = True
    # a retry under a neutral name, telling SNI filtering from address blocking
    neutral: bool = False


@dataclass(frozen=True)
class _Cert:
    subject: str | None
    issuer: str | None
    sha256: str | None


_NO_CERT = _Cert(None, None, None)


async def measure(spec: TLSSpec) -> TLSResult:
    """Handshake with ``spec.ip`` under ``spec.sni``; never raise on a network failure."""
    # built outside the try: an unreadable ca_file is a configuration error, not a measurement
    context = _context(spec.ca_file, spec.verify)
    started = time.perf_counter()
    try:
        version, cert = await _handshake(spec, context)
    except failures.NETWORK_ERRORS as exc:
        return await _failed(spec, failures.classify(exc), elapsed_ms(started))
    return _result(spec, None, elapsed_ms(started), version, True if spec.verify else None, cert)


async def upgrade(
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], spec: TLSSpec, connect_ms: float
) -> TLSResult:
    """Handshake over a connection already open (the connection step's TCP connect), which
    stays open for the GET when it succeeds and is closed when it fails; never raise on a
    network failure. ``ms`` is ``connect_ms`` plus the handshake, as ``measure``'s is."""
    context = _context(spec.ca_file, spec.verify)
    _, writer = stream
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            await writer.start_tls(context, server_hostname=spec.sni)
    except failures.NETWORK_ERRORS as exc:
        writer.transport.abort()  # asyncio closed it already on most failures, not on all
        ms = round(connect_ms + elapsed_ms(started), 3)
        return await _failed(spec, failures.classify(exc), ms)
    ms = round(connect_ms + elapsed_ms(started), 3)
    version, cert = _peer(writer)
    return _result(spec, None, ms, version, True if spec.verify else None, cert)


async def _failed(spec: TLSSpec, failure: str, ms: float) -> TLSResult:
    """Return a failed handshake's result, with the certificate when it did not verify."""
    if failure not in failures.CERTIFICATE_FAILURES:
        return _result(spec, failure, ms, None, None, _NO_CERT)
    return _result(spec, failure, ms, None, False, await _fetch_cert(spec))


def _peer(writer: asyncio.StreamWriter) -> tuple[str | None, _Cert]:
    """Return the TLS version and the peer's certificate of a completed handshake."""
    ssl_object = writer.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    return version, _describe(der)


async def _handshake(spec: TLSSpec, context: ssl.SSLContext) -> tuple[str | None, _Cert]:
    """Connect, complete the handshake, and return the TLS version and the peer certificate."""
    async with asyncio.timeout(spec.timeout_seconds):
        _, writer = await asyncio.open_connection(
            spec.ip, spec.port, ssl=context, server_hostname=spec.sni
        )
    peer = _peer(writer)
    # send close_notify and go on: waiting for the peer's would cost a round trip on every
    # target, and how the peer takes our close is no part of the result; asyncio completes
    # the shutdown (or aborts it after its ssl_shutdown_timeout) in the background
    writer.close()
    return peer


async def _fetch_cert(spec: TLSSpec) -> _Cert:
    """Handshake again without verification, only to read the certificate that failed."""
    with contextlib.suppress(*failures.NETWORK_ERRORS):
        _, cert = await _handshake(spec, _context(spec.ca_file, False))
        return cert
    return _NO_CERT


@functools.lru_cache(maxsize=256)
def _describe(der: bytes | None) -> _Cert:
    """Return the RFC 4514 subject and issuer and the SHA-256 of a DER certificate.

    Cached: the targets of a cycle meet the same certificates again and again (a CDN's shared
    one, an ISP's block page's), and parsing one costs more than its handshake's own Python."""
    if not der:
        return _NO_CERT
    sha256 = hashlib.sha256(der).hexdigest()
    try:
        cert = cryptography.x509.load_der_x509_certificate(der)
    except ValueError:
        # a certificate OpenSSL accepted but cryptography cannot parse: keep at least its hash
        return _Cert(None, None, sha256)
    return _Cert(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), sha256)


# What asyncio's TLS transport reads into at a time. Its default, 256 KiB
# (asyncio.sslproto.SSLProtocol.max_size, allocated and zeroed for every connection), is most of
# a target's memory while it is in flight: 16 MiB of a cycle at 64 targets at once, for pages
# read 64 KiB at a time (probe/steps/http.py). One TLS record is at most 16 KiB (RFC 8446 §5.1).
READ_BUFFER_BYTES = 16 * 1024


def limit_read_buffer(size: int = READ_BUFFER_BYTES) -> None:
    """Make asyncio's TLS connections of this process read ``size`` bytes at a time (the
    probe's commands call it: a process of its own; uvloop's transport keeps its own)."""
    import asyncio.sslproto

    if getattr(asyncio.sslproto.SSLProtocol, "max_size", size) > size:
        asyncio.sslproto.SSLProtocol.max_size = size


@functools.lru_cache(maxsize=8)
def _context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """Return a client context: system store plus ``ca_file``, or one verifying nothing.

    Cached as the HTTP step's is: building one with the system store costs about 18 ms of CPU
    here (python -c timing of ssl.create_default_context), once per handshake without the cache.
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _result(
    spec: TLSSpec, failure: str | None, ms: float, version: str | None,
    cert_valid: bool | None, cert: _Cert,
) -> TLSResult:  # fmt: skip
    return TLSResult(
        ip=spec.ip, port=spec.port, sni=spec.sni, failure=failure, ms=ms, version=version,
        cert_valid=cert_valid, neutral=spec.neutral, cert_subject=cert.subject,
        cert_issuer=cert.issuer, cert_sha256=cert.sha256,
    )  # fmt: skip
