"""Loopback servers for the step tests: a DNS server (tests/support), web servers, raw TCP servers.

Every server listens on 127.0.0.1 or ::1 on a free port and is closed by its fixture.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import trustme
from aiohttp import web

from tests.support import dns_server as dns_server_mod
from tests.support.dns_server import DNSServer

# a name no resolver knows: if a step resolved it through the system, the test would fail
HOST = "surblocage.test"


@pytest.fixture
async def dns_server() -> AsyncIterator[DNSServer]:
    """A DNS server on 127.0.0.1 answering from its ``zones`` (NOERROR, no answer, otherwise)."""
    async with dns_server_mod.serving("127.0.0.1") as server:
        yield server


@pytest.fixture
async def dns_server6() -> AsyncIterator[DNSServer]:
    """A DNS server on ::1 answering from its ``zones``."""
    async with dns_server_mod.serving("::1") as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (TCP and UDP): the kernel refuses."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- TLS material -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: trustme.CA
    ca_file: str
    leaf: trustme.LeafCert
    expired: trustme.LeafCert


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    import datetime

    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    leaf = ca.issue_cert(HOST, common_name=HOST)
    expired = ca.issue_cert(
        HOST,
        common_name=HOST,
        not_before=datetime.datetime(2020, 1, 1),
        not_after=datetime.datetime(2021, 1, 1),
    )
    return Certs(ca=ca, ca_file=str(path), leaf=leaf, expired=expired)


def server_context(cert: trustme.LeafCert, seen_sni: list[str | None]) -> ssl.SSLContext:
    """Return a server context serving ``cert`` that records the SNI of each ClientHello."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.sni_callback = lambda _obj, name, _ctx: seen_sni.append(name)
    return context


# --- aiohttp web servers ------------------------------------------------------------------------

PAGE = (
    "<!doctype html><html><head>\n<TITLE lang=fr>\n  Caf&eacute;   &amp;\n  Th&#233;  </TITLE>"
    "<title>second</title></head><body>{host}</body></html>"
)


async def _page(request: web.Request) -> web.Response:
    body = PAGE.format(host=request.host)
    headers = {"X-Cache": "HIT", "Set-Cookie": "session=secret", "X-Other": "dropped"}
    return web.Response(text=body, content_type="text/html", headers=headers)


async def _moved(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": "https://elsewhere.test/next"})


async def _big(request: web.Request) -> web.Response:
    size = int(request.query["size"])
    return web.Response(body=bytes(i % 251 for i in range(size)))


def web_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _page)
    app.router.add_get("/moved", _moved)
    app.router.add_get("/big", _big)
    return app


ServeWeb = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve_web() -> AsyncIterator[ServeWeb]:
    """Start ``web_app()`` on (host, free port), with TLS when a context is given; return port."""
    runners: list[web.AppRunner] = []

    async def start(host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> int:
        runner = web.AppRunner(web_app(), access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


# --- raw TCP servers ----------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServeRaw = Callable[[Handler], Awaitable[int]]


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a RST (SO_LINGER 0), as a middlebox's REJECT tcp-reset would."""
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.transport.abort()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read an HTTP request head, up to the blank line."""
    return await reader.readuntil(b"\r\n\r\n")


@pytest.fixture
async def serve_raw() -> AsyncIterator[ServeRaw]:
    """Start a raw TCP server on 127.0.0.1 running ``handler`` per connection; return its port.

    Handlers may wait forever (a server that never answers): teardown cancels them.
    """
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> int:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            await handler(reader, writer)

        server = await asyncio.start_server(run, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        await server.wait_closed()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read whatever comes and never say anything: the client can only time out."""
    while await reader.read(65536):
        pass
    await asyncio.Event().wait()


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listening port on 127.0.0.1 whose accept queue is full: new SYNs are dropped.

    Loopback cannot blackhole a packet, but Linux drops a SYN when the listener's accept queue is
    full (tcp_conn_request: sk_acceptq_is_full), so a connect there waits until it times out.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(listener.getsockname())
            except TimeoutError:
                break  # this SYN was dropped: the queue is full
        else:
            pytest.fail("the accept queue never filled up")
        yield listener.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
