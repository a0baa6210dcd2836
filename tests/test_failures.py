"""probe.failures: real exceptions (made for real where cheap) and every DNS rcode to strings."""

from __future__ import annotations

import asyncio
import datetime
import errno
import socket
import ssl
import struct

import aiohttp
import aiohttp.client_reqrep
import aiohttp.http_exceptions
import dns.exception
import dns.name
import dns.rcode
import dns.resolver
import pytest
import trustme

from probe import failures

NAME = "good.test"


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def _handshake_error(
    server: ssl.SSLContext, client: ssl.SSLContext, sni: str, incoming: bytes | None = None
) -> ssl.SSLError:
    """Run a real TLS handshake in memory (no socket) and return the client's error.

    With ``incoming``, the client reads those bytes instead of the server's; b"" means EOF.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=sni)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            c.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            return exc
        else:
            raise AssertionError("the handshake succeeded")
        if incoming is not None:
            c_in.write(incoming) if incoming else c_in.write_eof()
            continue
        s_in.write(c_out.read())
        try:
            s.do_handshake()
        except ssl.SSLError:
            pass  # the server side waits, or has seen the client's alert
        c_in.write(s_out.read())
    raise AssertionError("the handshake neither failed nor succeeded")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_hostname_mismatch_is_invalid_hostname(ca, trusting):
    exc = _handshake_error(_server_context(ca.issue_cert(NAME)), trusting, "other.test")
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 62
    assert failures.classify(exc) == "ssl_invalid_hostname"


def test_unknown_ca_is_unknown_authority(ca):
    exc = _handshake_error(_server_context(ca.issue_cert(NAME)), ssl.create_default_context(), NAME)
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 20
    assert failures.classify(exc) == "ssl_unknown_authority"


def test_self_signed_is_unknown_authority(ca, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    ca.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cert))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert), str(key))  # the CA's own self-signed certificate as a leaf
    client = ssl.create_default_context()
    client.check_hostname = False
    exc = _handshake_error(server, client, NAME)
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == 18
    assert failures.classify(exc) == "ssl_unknown_authority"


@pytest.mark.parametrize(
    ("not_before", "not_after", "code"),
    [((2020, 1, 1), (2021, 1, 1), 10), ((2100, 1, 1), (2101, 1, 1), 9)],
    ids=["expired", "not-yet-valid"],
)
def test_dates_are_invalid_certificate(ca, trusting, not_before, not_after, code):
    cert = ca.issue_cert(
        NAME, not_before=datetime.datetime(*not_before), not_after=datetime.datetime(*not_after)
    )
    exc = _handshake_error(_server_context(cert), trusting, NAME)
    assert isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code == code
    assert failures.classify(exc) == "ssl_invalid_certificate"


def test_not_tls_is_failed_handshake(ca, trusting):
    server = _server_context(ca.issue_cert(NAME))
    exc = _handshake_error(server, trusting, NAME, incoming=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert type(exc) is ssl.SSLError
    assert failures.classify(exc) == "ssl_failed_handshake"


def test_eof_during_handshake_is_eof(ca, trusting):
    exc = _handshake_error(_server_context(ca.issue_cert(NAME)), trusting, NAME, incoming=b"")
    assert isinstance(exc, ssl.SSLEOFError)
    assert failures.classify(exc) == "eof_error"


def test_refused_connect_on_loopback():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the kernel answers RST
        with socket.socket() as client, pytest.raises(ConnectionRefusedError) as info:
            client.connect(("127.0.0.1", port))
    assert failures.classify(info.value) == "connection_refused"


def test_reset_by_peer_on_loopback():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # SO_LINGER 0: close sends RST
        with client, pytest.raises(ConnectionResetError) as info:
            client.recv(1)
    assert info.value.errno == errno.ECONNRESET
    assert failures.classify(info.value) == "connection_reset"


def test_broken_pipe():
    a, b = socket.socketpair()
    b.close()
    with a, pytest.raises(BrokenPipeError) as info:
        a.send(b"x")
    assert failures.classify(info.value) == "connection_reset"


async def test_asyncio_timeout():
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0):
            await asyncio.sleep(1)
    assert failures.classify(info.value) == "generic_timeout_error"


async def test_incomplete_read_is_eof():
    reader = asyncio.StreamReader()
    reader.feed_data(b"ab")
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await reader.readexactly(3)
    assert failures.classify(info.value) == "eof_error"


async def test_aiohttp_refused_is_unwrapped():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(f"http://127.0.0.1:{port}/")
    assert failures.classify(info.value) == "connection_refused"


def test_aiohttp_certificate_error_is_unwrapped(ca):
    verify = _handshake_error(
        _server_context(ca.issue_cert(NAME)), ssl.create_default_context(), NAME
    )
    key = aiohttp.client_reqrep.ConnectionKey(NAME, 443, True, True, None, None, None, None)
    exc = aiohttp.ClientConnectorCertificateError(key, verify)
    assert failures.classify(exc) == "ssl_unknown_authority"


def _key() -> aiohttp.client_reqrep.ConnectionKey:
    return aiohttp.client_reqrep.ConnectionKey("h.test", 80, False, True, None, None, None, None)


def _payload_error(message: str, cause: BaseException | None) -> aiohttp.ClientPayloadError:
    exc = aiohttp.ClientPayloadError(message)
    exc.__cause__ = cause
    return exc


_NOT_ENOUGH = aiohttp.http_exceptions.ContentLengthError("Not enough data")

CONSTRUCTED = [
    # lab.md §9: what an ICMP reject or a route-less destination raises (not cheap on loopback)
    (OSError(errno.EHOSTUNREACH, "No route to host"), "host_unreachable"),
    (OSError(errno.EACCES, "Permission denied"), "host_unreachable"),
    (OSError(errno.EPERM, "Operation not permitted"), "host_unreachable"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "network_unreachable"),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), "generic_timeout_error"),
    # asyncio's ConnectionResetError() on a FIN during a TLS handshake (sslproto.eof_received)
    (ConnectionResetError(), "eof_error"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns_nxdomain_error"),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
     "dns_server_failure"),
    (socket.gaierror(socket.EAI_NODATA, "No address associated with hostname"), "dns_no_answer"),
    (socket.gaierror(socket.EAI_SERVICE, "Servname not supported"),
     "unknown_failure: gaierror: [Errno -8] Servname not supported"),
    (dns.exception.Timeout(), "generic_timeout_error"),
    (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), "generic_timeout_error"),
    (dns.resolver.NXDOMAIN(qnames=[dns.name.from_text("x.test")]), "dns_nxdomain_error"),
    (dns.resolver.NoAnswer(), "dns_no_answer"),
    (dns.resolver.NoNameservers(), "dns_server_failure"),
    (aiohttp.ClientConnectorError(_key(), OSError(errno.EHOSTUNREACH, "x")), "host_unreachable"),
    (aiohttp.ClientConnectorError(_key(), ConnectionResetError(errno.ECONNRESET, "x")),
     "connection_reset"),
    (aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"), "connection_reset"),
    (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), "connection_reset"),
    (aiohttp.ServerDisconnectedError(), "eof_error"),
    (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), "generic_timeout_error"),
    (aiohttp.ConnectionTimeoutError("Connection timeout"), "generic_timeout_error"),
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), "generic_timeout_error"),
    (_payload_error("Response payload is not completed", _NOT_ENOUGH), "eof_error"),
    (
        _payload_error(
            "Response payload is not completed: x. ConnectionResetError(104, 'reset')", _NOT_ENOUGH
        ),
        "connection_reset",
    ),
    (_payload_error("cut", ConnectionResetError(errno.ECONNRESET, "x")), "connection_reset"),
    (ValueError("boom"), "unknown_failure: ValueError: boom"),
    (RuntimeError(), "unknown_failure: RuntimeError"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "unknown_failure: OSError: [Errno 28] No space left on device"),
    (dns.exception.FormError("bad"), "unknown_failure: FormError: bad"),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "expected"), CONSTRUCTED, ids=lambda v: type(v).__name__)
def test_constructed_exceptions(exc, expected):
    assert failures.classify(exc) == expected


def test_every_string_is_in_the_vocabulary():
    for exc, _ in CONSTRUCTED:
        got = failures.classify(exc)
        assert got in failures.FAILURES or got.startswith(failures.UNKNOWN_PREFIX)
    assert len(set(failures.FAILURES)) == 14


RCODES = {
    "NOERROR": None,
    "NXDOMAIN": "dns_nxdomain_error",
    "REFUSED": "dns_refused_error",
    "SERVFAIL": "dns_server_failure",
}


@pytest.mark.parametrize("rcode", [dns.rcode.to_text(r) for r in dns.rcode.Rcode])
def test_every_rcode(rcode):
    expected = RCODES.get(rcode, f"unknown_failure: dns rcode {rcode}")
    assert failures.rcode_failure(rcode) == expected
