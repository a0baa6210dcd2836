"""probe.steps.http against aiohttp servers (HTTP, HTTPS) and raw servers that cut or stall."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import pytest

from probe.steps import http
from tests.steps.conftest import HOST, PAGE, never_answer, read_request, reset, server_context


def _spec(url: str, ip: str = "127.0.0.1", **kw) -> http.HTTPSpec:
    return http.HTTPSpec(url=url, ip=ip, **{"timeout_seconds": 2.0} | kw)


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
async def test_get_200_pinned_to_the_address(serve_web, ip):
    port = await serve_web(host=ip)
    url = f"http://{HOST}:{port}/"  # HOST resolves nowhere: only the pinned address can work
    r = await http.measure(_spec(url, ip=ip))
    body = PAGE.format(host=f"{HOST}:{port}").encode()  # the page echoes the Host header
    assert (r.failure, r.status, r.url, r.ip) == (None, 200, url, ip)
    assert r.title == "Café & Thé"  # the first title, unescaped, whitespace collapsed
    assert r.body_length == len(body)
    assert r.body_sha256 == hashlib.sha256(body).hexdigest()
    assert r.body_truncated is False
    assert r.body_head == body.decode()
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-cache"] == "HIT"
    assert r.headers["content-length"] == str(len(body))
    assert r.headers["server"].startswith("Python/")
    assert set(r.headers) == {"content-type", "content-length", "x-cache", "server"}
    assert r.redirects == []
    assert r.ms > 0


async def test_https_with_sni_and_host_from_the_url(serve_web, certs):
    seen: list[str | None] = []
    port = await serve_web(ssl_context=server_context(certs.leaf, seen))
    r = await http.measure(_spec(f"https://{HOST}:{port}/", ca_file=certs.ca_file))
    assert (r.failure, r.status) == (None, 200)
    assert seen == [HOST]
    assert r.body_head is not None and f"<body>{HOST}:{port}</body>" in r.body_head


@pytest.mark.parametrize(
    ("ca", "host", "failure"),
    [(False, HOST, "ssl_unknown_authority"), (True, "other.test", "ssl_invalid_hostname")],
)
async def test_https_certificate_failures(serve_web, certs, ca, host, failure):
    port = await serve_web(ssl_context=server_context(certs.leaf, []))
    ca_file = certs.ca_file if ca else None
    r = await http.measure(_spec(f"https://{host}:{port}/", ca_file=ca_file))
    assert (r.failure, r.status, r.body_sha256) == (failure, None, None)


async def test_redirect_is_a_result_not_followed(serve_web):
    port = await serve_web()
    r = await http.measure(_spec(f"http://{HOST}:{port}/moved"))
    assert (r.failure, r.status) == (None, 301)
    assert r.headers["location"] == "https://elsewhere.test/next"
    assert r.redirects == []


@pytest.mark.parametrize(("size", "truncated"), [(5000, True), (1000, False)])
async def test_body_cap(serve_web, size, truncated):
    port = await serve_web()
    r = await http.measure(_spec(f"http://{HOST}:{port}/big?size={size}", body_cap_bytes=1000))
    read = bytes(i % 251 for i in range(1000))
    assert (r.failure, r.status, r.body_truncated) == (None, 200, truncated)
    assert r.body_length == 1000
    assert r.body_sha256 == hashlib.sha256(read).hexdigest()
    assert r.title is None


async def test_reset_after_request(serve_raw):
    requests: list[bytes] = []

    async def rst_after_request(reader, writer):
        requests.append(await read_request(reader))
        reset(writer)

    port = await serve_raw(rst_after_request)
    r = await http.measure(_spec(f"http://{HOST}:{port}/path", user_agent="ua-test/1"))
    assert (r.failure, r.status) == ("connection_reset", None)
    head = requests[0].decode()
    assert head.startswith("GET /path HTTP/1.1\r\n")
    assert f"\r\nHost: {HOST}:{port}\r\n" in head
    assert "\r\nUser-Agent: ua-test/1\r\n" in head


async def test_reset_during_tls_handshake(serve_raw, certs):
    # an SNI filter's RST: aiohttp wraps it in ClientConnectorError, not ClientSSLError
    async def rst_after_client_hello(reader, writer):
        await reader.read(1)
        reset(writer)

    port = await serve_raw(rst_after_client_hello)
    r = await http.measure(_spec(f"https://{HOST}:{port}/", ca_file=certs.ca_file))
    assert (r.failure, r.status) == ("connection_reset", None)


async def test_close_after_request_is_eof(serve_raw):
    async def fin_after_request(reader, writer):
        await read_request(reader)
        writer.close()

    port = await serve_raw(fin_after_request)
    r = await http.measure(_spec(f"http://{HOST}:{port}/"))
    assert r.failure == "eof_error"


@pytest.mark.parametrize(("cut", "failure"), [(reset, "connection_reset"), (None, "eof_error")])
async def test_body_cut_short(serve_raw, cut, failure):
    async def half_a_body(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        reset(writer) if cut else writer.close()

    port = await serve_raw(half_a_body)
    r = await http.measure(_spec(f"http://{HOST}:{port}/"))
    assert (r.failure, r.status) == (failure, None)


async def test_server_that_never_answers_is_timeout(serve_raw):
    port = await serve_raw(never_answer)
    r = await http.measure(_spec(f"http://{HOST}:{port}/", timeout_seconds=0.3))
    assert (r.failure, r.status, r.ip) == ("generic_timeout_error", None, "127.0.0.1")


async def test_closed_port_is_refused(closed_port):
    r = await http.measure(_spec(f"http://{HOST}:{closed_port}/"))
    assert r.failure == "connection_refused"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("<html><title>a</title>", "a"),
        ("<title></title>", ""),
        ("no title here", None),
        ("<title>" + "x" * 300 + "</title>", "x" * 200),
        ("<title>unterminated", None),
    ],
)
def test_title_of(text, title):
    assert http.title_of(text) == title


def _encoded_body(encoding: str, data: bytes) -> bytes:
    return gzip.compress(data) if encoding == "gzip" else zlib.compress(data)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize(("size", "truncated"), [(800, False), (1_000_000, True)])
async def test_compressed_body_is_read_decoded_and_capped(serve_raw, encoding, size, truncated):
    data = (b"<title>z</title>" + b"0" * size)[:size]
    body = _encoded_body(encoding, data)

    async def compressed(reader, writer):
        request = await read_request(reader)
        assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in request
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(body)}"
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()

    port = await serve_raw(compressed)
    r = await http.measure(_spec(f"http://{HOST}:{port}/", body_cap_bytes=1000))
    kept = data[:1000]
    assert (r.failure, r.status, r.body_truncated) == (None, 200, truncated)
    assert (r.body_length, r.body_sha256) == (len(kept), hashlib.sha256(kept).hexdigest())
    assert r.title == "z"


async def test_a_body_its_encoding_does_not_describe_is_a_protocol_failure(serve_raw):
    async def lying(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nplain")
        await writer.drain()

    port = await serve_raw(lying)
    r = await http.measure(_spec(f"http://{HOST}:{port}/"))
    assert r.failure is not None
    assert r.failure.startswith("unknown_failure: RemoteProtocolError: gzip body does not decode")


async def test_a_response_http_cannot_frame_is_a_protocol_failure(serve_raw):
    async def garbage(reader, writer):
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    port = await serve_raw(garbage)
    r = await http.measure(_spec(f"http://{HOST}:{port}/"))
    assert r.failure is not None and r.failure.startswith("unknown_failure: RemoteProtocolError")
