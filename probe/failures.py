"""The only place an exception or a DNS rcode becomes a failure string (docs/spec.md, failures).

The strings are OONI's, so researchers' tools read them. ``classify`` unwraps aiohttp's wrappers
first (they subclass OSError, lab.md §9), then decides by type and errno; whatever it does not
know becomes ``"unknown_failure: <Type>: <message>"``, never an exception.
"""

from __future__ import annotations

import errno
import socket
import ssl
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.resolver
import h11

DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_REFUSED = "dns_refused_error"
DNS_SERVER_FAILURE = "dns_server_failure"
DNS_NO_ANSWER = "dns_no_answer"
TIMEOUT = "generic_timeout_error"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
EOF = "eof_error"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
UNKNOWN_PREFIX = "unknown_failure: "

FAILURES = (
    DNS_NXDOMAIN, DNS_REFUSED, DNS_SERVER_FAILURE, DNS_NO_ANSWER, TIMEOUT, CONNECTION_REFUSED,
    CONNECTION_RESET, HOST_UNREACHABLE, NETWORK_UNREACHABLE, EOF, SSL_INVALID_HOSTNAME,
    SSL_UNKNOWN_AUTHORITY, SSL_INVALID_CERTIFICATE, SSL_FAILED_HANDSHAKE,
)  # fmt: skip

# Where our word is the OONI test helper's, a probe's word in OONI data (ooni/spec
# data-formats/df-007-errors.md): a SERVFAIL is "dns_server_failure" in oohelperd's answers and
# "dns_servfail_error" in a probe's measurement. The OONI export speaks as a probe.
OONI_PROBE_WORDS = {DNS_SERVER_FAILURE: "dns_servfail_error"}


def as_ooni_probe(failure: str | None) -> str | None:
    """Return a failure as an OONI probe's measurement spells it."""
    return OONI_PROBE_WORDS.get(failure, failure) if failure is not None else None


# The peer presented a certificate that does not verify: worth fetching it to fingerprint it.
CERTIFICATE_FAILURES = (SSL_INVALID_HOSTNAME, SSL_UNKNOWN_AUTHORITY, SSL_INVALID_CERTIFICATE)

# What a step may catch around its I/O: network outcomes, never programming errors. aiohttp's
# ClientError is one of them once aiohttp is loaded (``NETWORK_ERRORS`` below): only the
# collector's client and DNS over HTTPS use aiohttp, and `check` over plain DNS does not pay
# for importing it (a third of the probe's start-up CPU and 20 MiB, docs/bench/i19-light.md).
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, EOFError, dns.exception.DNSException,
    # a response HTTP/1.1 cannot frame (probe/steps/http.py): the peer's doing, as a reset is
    h11.ProtocolError,
)  # fmt: skip

if TYPE_CHECKING:
    import aiohttp

    NETWORK_ERRORS: tuple[type[BaseException], ...]
else:

    def __getattr__(name: str) -> Any:
        """``NETWORK_ERRORS``: the tuple above, with aiohttp's ClientError once aiohttp is loaded
        (an aiohttp error cannot exist before); read at each ``except``, which is cheap."""
        if name != "NETWORK_ERRORS":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        client_error = getattr(_aiohttp(), "ClientError", None)
        return _NETWORK_ERRORS if client_error is None else (*_NETWORK_ERRORS, client_error)


def _aiohttp() -> ModuleType | None:
    """aiohttp if something imported it (the collector's client, DoH), else None."""
    return sys.modules.get("aiohttp")


class UnusableAnswer(dns.exception.DNSException):
    """An encrypted resolver's answer that carries no usable DNS message (an HTML page, another
    content type, a body past a DNS message's size): its text becomes the failure string."""


_RCODES = {"NXDOMAIN": DNS_NXDOMAIN, "REFUSED": DNS_REFUSED, "SERVFAIL": DNS_SERVER_FAILURE}

_ERRNOS = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    # ICMPv6 admin-prohibited surfaces as EACCES, and a local firewall REJECT as EPERM (lab.md §9)
    errno.EACCES: HOST_UNREACHABLE,
    errno.EPERM: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: TIMEOUT,
}

# getaddrinfo (through aiohttp's default resolver): REFUSED and SERVFAIL both come back as
# EAI_AGAIN from glibc (lab.md §9), so the stub cannot tell them apart
_GAI_ERRORS = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): DNS_NO_ANSWER,
    socket.EAI_AGAIN: DNS_SERVER_FAILURE,
    socket.EAI_FAIL: DNS_SERVER_FAILURE,
}

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h)
_VERIFY_CODES = {
    62: SSL_INVALID_HOSTNAME,  # HOSTNAME_MISMATCH
    64: SSL_INVALID_HOSTNAME,  # IP_ADDRESS_MISMATCH
    2: SSL_UNKNOWN_AUTHORITY,  # UNABLE_TO_GET_ISSUER_CERT
    18: SSL_UNKNOWN_AUTHORITY,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: SSL_UNKNOWN_AUTHORITY,  # SELF_SIGNED_CERT_IN_CHAIN
    20: SSL_UNKNOWN_AUTHORITY,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: SSL_UNKNOWN_AUTHORITY,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
}


def rcode_failure(rcode: str) -> str | None:
    """Return the failure string for a DNS rcode name, or None for NOERROR."""
    if rcode == "NOERROR":
        return None
    return _RCODES.get(rcode, f"{UNKNOWN_PREFIX}dns rcode {rcode}")


def classify(exc: BaseException) -> str:
    """Return the failure string for an exception raised by network I/O."""
    web = _aiohttp()
    exc = _unwrap(exc, web)
    if isinstance(exc, dns.exception.DNSException):
        return _classify_dns(exc)
    if isinstance(exc, ssl.SSLError):
        return _classify_ssl(exc)
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    if isinstance(exc, EOFError) or (web and isinstance(exc, web.ServerDisconnectedError)):
        return EOF
    if web and isinstance(exc, web.ClientPayloadError):
        return _classify_payload(exc, web)
    if isinstance(exc, OSError):
        return _classify_os(exc)
    return unknown(exc)


def unknown(exc: BaseException) -> str:
    """Return the catch-all failure string naming the exception's type and message."""
    text = str(exc)
    name = type(exc).__name__
    return f"{UNKNOWN_PREFIX}{name}: {text}" if text else f"{UNKNOWN_PREFIX}{name}"


def unknown_text(text: str) -> str:
    """Return the catch-all failure string for a failure that is no exception (OONI's
    "unknown_failure: stopped after too many redirects")."""
    return f"{UNKNOWN_PREFIX}{text}"


def _unwrap(exc: BaseException, web: Any) -> BaseException:
    """Return the OS or TLS error aiohttp (``web``, None when not loaded) wrapped, so that its
    type and errno decide."""
    if web is None:
        return exc
    if isinstance(exc, web.ClientConnectorCertificateError):
        return exc.certificate_error
    if isinstance(exc, web.ClientConnectorError):
        return exc.os_error
    return exc


def _classify_dns(exc: dns.exception.DNSException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return TIMEOUT
    if isinstance(exc, UnusableAnswer):
        return unknown_text(str(exc))
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(exc, dns.resolver.NoNameservers):
        # every server answered badly (SERVFAIL, REFUSED, ...): the stub cannot tell which
        return DNS_SERVER_FAILURE
    return unknown(exc)


def _classify_ssl(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_CODES.get(exc.verify_code, SSL_INVALID_CERTIFICATE)
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return EOF
    if exc.reason == "UNEXPECTED_EOF_WHILE_READING":
        return EOF
    return SSL_FAILED_HANDSHAKE


def _classify_payload(exc: aiohttp.ClientPayloadError, web: Any) -> str:
    """Classify a body cut short: a reset, or the peer closing before the announced length."""
    cause = exc.__cause__
    if isinstance(cause, OSError | TimeoutError):
        return classify(cause)
    # aiohttp keeps the connection error only in the message (client_proto.connection_lost);
    # its cause is the parser's complaint about the missing bytes
    if "ConnectionResetError" in str(exc):
        return CONNECTION_RESET
    if isinstance(cause, web.http_exceptions.PayloadEncodingError):
        return EOF
    return unknown(exc)


def _classify_os(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return _GAI_ERRORS.get(exc.errno, unknown(exc))
    if _is_bare_reset(exc):
        return EOF
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return CONNECTION_RESET
    if exc.errno in _ERRNOS:
        return _ERRNOS[exc.errno]
    return unknown(exc)


def _is_bare_reset(exc: OSError) -> bool:
    """Tell asyncio's errno-less ConnectionResetError(), raised on a FIN, from a real RST.

    asyncio raises a bare ConnectionResetError() when the peer closes cleanly during a TLS
    handshake (sslproto.eof_received) or before a drain; a real RST carries ECONNRESET. OONI
    calls the former eof_error. aiohttp's own ClientConnectionResetError stays a reset.
    """
    return type(exc) is ConnectionResetError and exc.errno is None
