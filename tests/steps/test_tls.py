"""probe.steps.tls against TLS servers with trustme certificates and raw servers that cut."""

from __future__ import annotations

import hashlib
import ssl

import cryptography.x509
import pytest

from probe.steps import tls
from tests.steps.conftest import HOST, never_answer, reset, server_context


def _der(cert_pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_pem.decode())


def _subject(cert_pem: bytes) -> str:
    return cryptography.x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string()


@pytest.fixture
async def tls_port(serve_web, certs):
    """A TLS server for HOST; the SNI of each handshake lands in ``tls_port.sni``."""
    seen: list[str | None] = []
    port = await serve_web(ssl_context=server_context(certs.leaf, seen))
    return port, seen


def _spec(port: int, sni: str = HOST, **kw) -> tls.TLSSpec:
    return tls.TLSSpec(ip="127.0.0.1", port=port, sni=sni, **{"timeout_seconds": 2.0} | kw)


def _assert_leaf(r: tls.TLSResult, certs) -> None:
    leaf_pem = certs.leaf.cert_chain_pems[0].bytes()
    assert r.cert_sha256 == hashlib.sha256(_der(leaf_pem)).hexdigest()
    assert r.cert_subject == _subject(leaf_pem)
    assert r.cert_subject is not None and f"CN={HOST}" in r.cert_subject
    assert r.cert_issuer == _subject(certs.ca.cert_pem.bytes())


async def test_handshake_ok(tls_port, certs):
    port, seen = tls_port
    r = await tls.measure(_spec(port, ca_file=certs.ca_file))
    assert (r.failure, r.cert_valid, r.neutral) == (None, True, False)
    assert r.version == "TLSv1.3"
    assert (r.ip, r.port, r.sni) == ("127.0.0.1", port, HOST)
    assert seen == [HOST]
    _assert_leaf(r, certs)


async def test_wrong_name_fetches_the_certificate(tls_port, certs):
    port, seen = tls_port
    r = await tls.measure(_spec(port, sni="other.test", ca_file=certs.ca_file))
    assert (r.failure, r.cert_valid, r.version) == ("ssl_invalid_hostname", False, None)
    assert seen == ["other.test", "other.test"]  # the second, unverified handshake
    _assert_leaf(r, certs)


async def test_unknown_ca(tls_port, certs):
    port, _ = tls_port
    r = await tls.measure(_spec(port))  # system store only: trustme's CA is unknown
    assert (r.failure, r.cert_valid) == ("ssl_unknown_authority", False)
    _assert_leaf(r, certs)


async def test_expired_certificate(serve_web, certs):
    port = await serve_web(ssl_context=server_context(certs.expired, []))
    r = await tls.measure(_spec(port, ca_file=certs.ca_file))
    assert (r.failure, r.cert_valid) == ("ssl_invalid_certificate", False)
    expired_pem = certs.expired.cert_chain_pems[0].bytes()
    assert r.cert_sha256 == hashlib.sha256(_der(expired_pem)).hexdigest()


async def test_neutral_sni_without_verification(tls_port, certs):
    port, seen = tls_port
    r = await tls.measure(_spec(port, sni="neutral.example", verify=False, neutral=True))
    assert (r.failure, r.cert_valid, r.neutral, r.sni) == (None, None, True, "neutral.example")
    assert seen == ["neutral.example"]
    _assert_leaf(r, certs)


async def test_reset_during_handshake(serve_raw):
    async def rst_after_client_hello(reader, writer):
        await reader.read(1)  # the ClientHello has started to arrive
        reset(writer)

    port = await serve_raw(rst_after_client_hello)
    r = await tls.measure(_spec(port))
    assert (r.failure, r.cert_valid, r.cert_sha256) == ("connection_reset", None, None)


async def test_close_during_handshake_is_eof(serve_raw):
    async def fin_after_client_hello(reader, writer):
        await reader.read(1)
        writer.close()

    port = await serve_raw(fin_after_client_hello)
    r = await tls.measure(_spec(port))
    assert (r.failure, r.cert_valid) == ("eof_error", None)


async def test_not_tls_is_failed_handshake(serve_raw):
    async def http_answer(reader, writer):
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    port = await serve_raw(http_answer)
    r = await tls.measure(_spec(port))
    assert r.failure == "ssl_failed_handshake"


async def test_silent_server_is_timeout(serve_raw):
    port = await serve_raw(never_answer)
    r = await tls.measure(_spec(port, timeout_seconds=0.3))
    assert (r.failure, r.cert_valid) == ("generic_timeout_error", None)


async def test_closed_port_is_refused(closed_port):
    r = await tls.measure(_spec(closed_port))
    assert r.failure == "connection_refused"
