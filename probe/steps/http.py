"""The HTTP step: one GET to one address, redirects not followed.

The URL's host is never resolved: the request goes to ``spec.ip`` (no hidden re-resolution
through the system resolver); SNI and Host are the URL's host. probe/flow.py follows redirects
itself, measuring each new host through the tested resolver. The body is read up to
``body_cap_bytes`` (decoded) to stay light on a volunteer's line.

``fetch`` sends the GET over a connection already open (probe/steps/connection.py's, which
measured its TCP connect and TLS handshake); ``measure`` opens its own. HTTP/1.1 is framed by
h11 (chunked, Content-Length or until close), on the connection as it is: no pool, no proxy
from the environment, no cookie.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import re
import ssl
import time
import zlib
from dataclasses import dataclass

import h11
import yarl

from probe import failures
from probe.record import HTTPResult
from probe.times import elapsed_ms

# headers that help tell a block page, a CDN or a cache apart; set-cookie is never kept
HEADERS = (
    "server", "content-type", "content-length", "location", "via", "x-cache", "cf-ray",
    "cf-cache-status", "x-served-by",
)  # fmt: skip
TITLE_MAX_CHARS = 200
BODY_HEAD_CHARS = 4096
READ_BYTES = 65536
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
# zlib window bits that accept what servers send as gzip, and as deflate (zlib-wrapped or raw)
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class HTTPSpec:
    url: str
    ip: str
    timeout_seconds: float = 10.0
    ca_file: str | None = None
    body_cap_bytes: int = 524288
    user_agent: str = "surblocage/0.1"


@dataclass(frozen=True)
class _Body:
    data: bytes
    truncated: bool


@dataclass(frozen=True)
class Origin:
    """What a connection to the URL's host needs: the SNI, the port, the Host header, the path."""

    host: str  # IDNA-encoded, as SNI and certificate checks want it
    port: int
    https: bool
    host_header: str
    target: str

    @classmethod
    def of(cls, url: str) -> Origin:
        u = yarl.URL(url)
        host = u.raw_host or ""
        shown = f"[{host}]" if ":" in host else host
        port = u.port or (443 if u.scheme == "https" else 80)
        header = shown if u.is_default_port() else f"{shown}:{port}"
        return cls(host, port, u.scheme == "https", header, u.raw_path_qs or "/")


async def measure(spec: HTTPSpec) -> HTTPResult:
    """Connect to ``spec.ip`` (with TLS for https) and GET ``spec.url``; never raise on a
    network failure. ``ms`` covers the connect, the handshake and the GET."""
    origin = Origin.of(spec.url)
    # built outside the try: an unreadable ca_file is a configuration error, not a measurement
    context = _context(spec.ca_file) if origin.https else None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            reader, writer = await asyncio.open_connection(
                spec.ip, origin.port, ssl=context, server_hostname=origin.host if context else None
            )
    except failures.NETWORK_ERRORS as exc:
        failure = failures.classify(exc)
        return HTTPResult(url=spec.url, failure=failure, ms=elapsed_ms(started), ip=spec.ip)
    return await fetch(reader, writer, spec, elapsed_ms(started))


async def fetch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: HTTPSpec, setup_ms: float
) -> HTTPResult:
    """GET ``spec.url`` over an open connection to ``spec.ip``, then close it; never raise on a
    network failure. ``ms`` is ``setup_ms`` (the connection's connect and handshake) plus the
    GET, so that it means the same as when the step opened its own connection."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            status, headers, body = await _get(reader, writer, spec)
    except failures.NETWORK_ERRORS as exc:
        ms = round(setup_ms + elapsed_ms(started), 3)
        return HTTPResult(url=spec.url, failure=failures.classify(exc), ms=ms, ip=spec.ip)
    finally:
        # how the peer takes our close is no part of the result (TLS: close_notify sent, not
        # awaited; asyncio finishes the shutdown in the background)
        writer.close()
    return _result(spec, round(setup_ms + elapsed_ms(started), 3), status, headers, body)


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: HTTPSpec
) -> tuple[int, dict[str, str], _Body]:
    """Send the one request and read the status, the selected headers and the capped body."""
    origin = Origin.of(spec.url)
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET",
        target=origin.target,
        headers=[
            ("Host", origin.host_header), ("User-Agent", spec.user_agent), ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"), ("Connection", "close"),
        ],
    )  # fmt: skip
    writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
    response = await _next(conn, reader)
    while isinstance(response, h11.InformationalResponse):  # 100 Continue and the like
        response = await _next(conn, reader)
    if not isinstance(response, h11.Response):
        raise h11.RemoteProtocolError(f"expected a response, got {type(response).__name__}")
    headers: dict[str, str] = {}
    encoding = ""
    for name, value in response.headers:  # h11 gives the names lower-cased
        key = name.decode("ascii", errors="replace")
        text = value.decode("utf-8", errors="replace")
        if key in HEADERS:
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        elif key == "content-encoding":
            encoding = text.strip().lower()
    body = await _read_body(conn, reader, spec.body_cap_bytes, encoding)
    return response.status_code, headers, body


async def _read_body(
    conn: h11.Connection, reader: asyncio.StreamReader, cap: int, encoding: str
) -> _Body:
    """Read the body decoded, at most ``cap`` bytes and one more to know whether there was more."""
    wbits = _WBITS.get(encoding)
    decoder = zlib.decompressobj(wbits) if wbits is not None else None
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        event = await _next(conn, reader)
        if not isinstance(event, h11.Data):
            break  # EndOfMessage: the whole body is in
        data = bytes(event.data)
        if decoder is not None:
            data = _decode(decoder, data, cap + 1 - size, encoding)
        chunks.append(data)
        size += len(data)
    body = b"".join(chunks)
    return _Body(body[:cap], len(body) > cap)


def _decode(decoder: zlib._Decompress, data: bytes, room: int, encoding: str) -> bytes:
    try:
        return decoder.decompress(data, room)
    except zlib.error as e:
        # a body its own Content-Encoding does not describe is the peer's protocol error
        raise h11.RemoteProtocolError(f"{encoding} body does not decode: {e}") from e


async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    """Return h11's next event, reading from the connection as it needs data."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            if reader.at_eof():
                raise EOFError("the peer closed before the end of the response") from e
            raise
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_BYTES))


def _result(
    spec: HTTPSpec, ms: float, status: int, headers: dict[str, str], body: _Body
) -> HTTPResult:
    text = body.data.decode("utf-8", errors="replace")
    return HTTPResult(
        url=spec.url, failure=None, ms=ms, status=status, body_length=len(body.data),
        body_sha256=hashlib.sha256(body.data).hexdigest(), title=title_of(text),
        headers=headers, ip=spec.ip, body_truncated=body.truncated,
        body_head=text[:BODY_HEAD_CHARS],
    )  # fmt: skip


def title_of(text: str) -> str | None:
    """Return the first <title>, unescaped and whitespace-collapsed, or None if there is none."""
    match = _TITLE.search(text)
    if match is None:
        return None
    return " ".join(html.unescape(match.group(1)).split())[:TITLE_MAX_CHARS]


@functools.lru_cache(maxsize=8)
def _context(ca_file: str | None) -> ssl.SSLContext:
    """Return a verifying client context: the system store plus ``ca_file``."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context
