"""probe.steps.connection: one connection per address for TCP, TLS and the GET, on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from probe.steps import connection, tls
from tests.steps.conftest import HOST, never_answer, read_request, reset, server_context

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nServer: counting\r\n\r\n"
    b"<title>counted</title>........"
)


@dataclass
class Counting:
    """A server on one address that counts its connections, handshakes and requests."""

    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    closed_by_client: int = 0


StartCounting = Callable[..., Awaitable[Counting]]


@pytest.fixture
async def counting() -> AsyncIterator[StartCounting]:
    """Start counting servers, all on one port (``port``), each on its own loopback address."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []
    chosen: list[int] = []

    async def start(host: str, context: ssl.SSLContext | None) -> Counting:
        seen = Counting()
        if context is not None:
            context.sni_callback = lambda _obj, name, _ctx: seen.sni.append(name)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            seen.connections += 1
            try:
                seen.requests.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                seen.closed_by_client += 1  # closed unused: the step chose another address
                return
            writer.write(RESPONSE)
            await writer.drain()
            writer.close()

        if not chosen:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                chosen.append(s.getsockname()[1])
        servers.append(await asyncio.start_server(handle, host, chosen[0], ssl=context))
        return seen

    start.port = lambda: chosen[0]  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.close()
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        await server.wait_closed()


def _spec(url: str, ips: tuple[str, ...], **kw) -> connection.ConnectionSpec:
    timeouts = {"tcp_timeout_seconds": 2.0, "tls_timeout_seconds": 2.0, "http_timeout_seconds": 2.0}
    return connection.ConnectionSpec(url=url, ips=ips, **timeouts | kw)


async def test_one_connection_carries_tcp_tls_and_the_get(counting, certs):
    server = await counting("127.0.0.1", server_context(certs.leaf, []))
    url = f"https://{HOST}:{counting.port()}/path?q=1"
    r = await connection.measure(_spec(url, ("127.0.0.1",), ca_file=certs.ca_file))
    assert server.connections == 1  # not three: one for TCP, one for TLS, one for the GET
    assert server.sni == [HOST]
    assert len(server.requests) == 1
    assert server.requests[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert f"\r\nHost: {HOST}:{counting.port()}\r\n".encode() in server.requests[0]
    (t,) = r.tcp
    (h,) = r.tls
    assert (t.ip, t.failure) == ("127.0.0.1", None)
    assert (h.ip, h.sni, h.failure, h.cert_valid, h.version) == (
        "127.0.0.1", HOST, None, True, "TLSv1.3",
    )  # fmt: skip
    assert r.http is not None
    assert (r.http.failure, r.http.status, r.http.ip, r.http.title) == (
        None, 200, "127.0.0.1", "counted",
    )  # fmt: skip
    assert r.http.headers == {"content-length": "30", "server": "counting"}
    # each layer's time counts from the connect, as when each had its own connection
    assert 0 < t.ms <= h.ms <= r.http.ms


async def test_every_address_connects_and_the_first_usable_is_fetched(counting, certs):
    second = await counting("127.0.0.2", server_context(certs.leaf, []))
    third = await counting("127.0.0.1", server_context(certs.leaf, []))
    url = f"https://{HOST}:{counting.port()}/"
    # nothing listens on 127.0.0.3: refused, and the GET goes to the next address in order
    ips = ("127.0.0.3", "127.0.0.2", "127.0.0.1")
    r = await connection.measure(_spec(url, ips, ca_file=certs.ca_file))
    assert [(t.ip, t.failure) for t in r.tcp] == [
        ("127.0.0.3", "connection_refused"), ("127.0.0.2", None), ("127.0.0.1", None),
    ]  # fmt: skip
    assert [(t.ip, t.failure) for t in r.tls] == [("127.0.0.2", None), ("127.0.0.1", None)]
    assert r.http is not None and (r.http.ip, r.http.status) == ("127.0.0.2", 200)
    assert (second.connections, len(second.requests)) == (1, 1)
    assert (third.connections, third.sni, third.requests) == (1, [HOST], [])
    for _ in range(100):  # the unused connection is closed, not left to the garbage collector
        if third.closed_by_client:
            break
        await asyncio.sleep(0.01)
    assert third.closed_by_client == 1


async def test_a_certificate_that_fails_is_fetched_and_nothing_is_got(counting, certs):
    server = await counting("127.0.0.1", server_context(certs.leaf, []))
    url = f"https://{HOST}:{counting.port()}/"
    r = await connection.measure(_spec(url, ("127.0.0.1",)))  # no ca_file: unknown CA
    (h,) = r.tls
    assert (h.failure, h.cert_valid) == ("ssl_unknown_authority", False)
    assert h.cert_subject is not None and f"CN={HOST}" in h.cert_subject
    assert r.http is None
    assert server.requests == []


async def test_plain_http_has_no_handshake(counting):
    server = await counting("127.0.0.1", None)
    r = await connection.measure(_spec(f"http://{HOST}:{counting.port()}/", ("127.0.0.1",)))
    assert (r.tls, server.connections) == ((), 1)
    assert r.http is not None and (r.http.status, r.http.body_length) == (200, 30)


async def test_no_address_no_get():
    r = await connection.measure(_spec(f"https://{HOST}/", ()))
    assert (r.tcp, r.tls, r.http) == ((), (), None)


async def _rst_after_hello(reader, writer):
    await reader.read(1)
    reset(writer)


async def _fin_after_hello(reader, writer):
    await reader.read(1)
    writer.close()


async def _http_answer(reader, writer):
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "failure"),
    [
        (_rst_after_hello, "connection_reset"),
        (_fin_after_hello, "eof_error"),
        (_http_answer, "ssl_failed_handshake"),
        (never_answer, "generic_timeout_error"),
    ],
)
async def test_handshake_failures_read_as_the_tls_step_reads_them(serve_raw, handler, failure):
    port = await serve_raw(handler)
    r = await connection.measure(
        _spec(f"https://{HOST}:{port}/", ("127.0.0.1",), tls_timeout_seconds=0.3)
    )
    alone = await tls.measure(tls.TLSSpec(ip="127.0.0.1", port=port, sni=HOST, timeout_seconds=0.3))
    ((t,), (h,)) = r.tcp, r.tls
    assert (t.failure, h.failure, h.cert_valid, r.http) == (None, failure, None, None)
    assert alone.failure == failure


async def test_cancelled_mid_get_closes_its_connection(serve_raw):
    closed = asyncio.Event()

    async def silent_until_closed(reader, writer):
        await read_request(reader)
        while await reader.read(65536):
            pass
        closed.set()
        await never_answer(reader, writer)

    port = await serve_raw(silent_until_closed)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await connection.measure(_spec(f"http://{HOST}:{port}/", ("127.0.0.1",)))
    async with asyncio.timeout(2):
        await closed.wait()


async def test_out_of_budget_returns_what_it_measured(serve_raw, certs):
    closed = asyncio.Event()

    async def silent_until_closed(reader, writer):  # connects, never completes a handshake
        while await reader.read(65536):
            pass
        closed.set()
        await never_answer(reader, writer)

    port = await serve_raw(silent_until_closed)
    r = await connection.measure(
        _spec(f"https://{HOST}:{port}/", ("127.0.0.1",), tls_timeout_seconds=5, budget_seconds=0.3)
    )
    assert [(t.ip, t.failure) for t in r.tcp] == [("127.0.0.1", None)]
    assert r.tls == ()  # the handshake did not end: no result, as in a cancelled step
    assert r.http is not None and r.http.failure == "generic_timeout_error"
    # the failed GET counts from the step's start, as the TCP connect's time does
    assert r.http.ms >= r.tcp[0].ms
    async with asyncio.timeout(2):  # a liveness bound: the abandoned handshake's socket is closed
        await closed.wait()


@pytest.fixture
def small_tls_reads() -> Iterator[int]:
    """asyncio's TLS transport reading 1 KiB at a time (the probe's process reads 16 KiB)."""
    import asyncio.sslproto

    default = asyncio.sslproto.SSLProtocol.max_size
    tls.limit_read_buffer(1024)
    yield asyncio.sslproto.SSLProtocol.max_size
    asyncio.sslproto.SSLProtocol.max_size = default


async def test_a_small_tls_read_buffer_still_reads_the_whole_page(
    serve_web, certs, small_tls_reads: int
) -> None:
    assert small_tls_reads == 1024
    port = await serve_web(ssl_context=server_context(certs.leaf, []))
    spec = connection.ConnectionSpec(
        url=f"https://{HOST}:{port}/big?size=200000", ips=("127.0.0.1",), ca_file=certs.ca_file
    )
    r = await connection.measure(spec)
    assert r.http is not None
    assert (r.http.failure, r.http.status, r.http.body_length) == (None, 200, 200000)
    assert r.http.body_truncated is False
    page = bytes(i % 251 for i in range(200000))  # what the server sends (tests/steps/conftest)
    assert r.http.body_sha256 == hashlib.sha256(page).hexdigest()
    assert [t.failure for t in r.tls] == [None]
