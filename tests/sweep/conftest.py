"""Loopback servers for the sweep tests: a TLS listener that may reset one SNI, raw TCP servers.

The TLS listener runs in a thread: it peeks at each ClientHello and resets the connection
(RST, SO_LINGER 0) when it names a blocked SNI, as an SNI-filtering middlebox does; otherwise
it completes the handshake with a trustme certificate.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trustme

from tests.daemon.conftest import dns_server  # noqa: F401
from tests.steps.conftest import closed_port, full_backlog_port, serve_raw  # noqa: F401

HOST = "surblocage.test"


@dataclass
class TLSListener:
    """A TLS server on 127.0.0.1 that resets the handshakes naming a ``blocked`` SNI."""

    leaf: trustme.LeafCert
    blocked: set[str] = field(default_factory=set)
    names: list[str] = field(default_factory=list)  # the SNI of each ClientHello answered
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(self.context)
        self.context.sni_callback = lambda _obj, name, _ctx: self.names.append(name or "")
        self._sock = socket.socket()
        self._sock.bind((self.host, 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._done:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            hello = conn.recv(4096, socket.MSG_PEEK)
            if any(name.encode() in hello for name in self.blocked):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)  # until the client's close
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._done = True
        self._sock.close()


@pytest.fixture(scope="session")
def leaf() -> trustme.LeafCert:
    return trustme.CA().issue_cert(HOST)


@pytest.fixture
def tls_listener(leaf: trustme.LeafCert) -> Iterator[TLSListener]:
    listener = TLSListener(leaf)
    yield listener
    listener.close()


def own_address() -> str:
    """An IPv4 address of this host that is not loopback. A connection to it never leaves the
    machine (the kernel routes it through lo), and unlike 127.0.0.1, which the probe never
    dials, the address policy lets a test allow it (--allow-network)."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        ip = line.split()[3].split("/")[0]
        if not ip.startswith("127."):
            return ip
    pytest.fail("no IPv4 address but loopback on this host")


@pytest.fixture
def own_ip() -> str:
    return own_address()


@pytest.fixture
def own_listener(leaf: trustme.LeafCert, own_ip: str) -> Iterator[TLSListener]:
    """A TLS listener on this host's own address, resetting the SNI blocked.example."""
    listener = TLSListener(leaf, blocked={"blocked.example"}, host=own_ip)
    yield listener
    listener.close()


@pytest.fixture
def own_filter(leaf: trustme.LeafCert, own_ip: str) -> Iterator[TLSListener]:
    """Another such listener: one address an ip and port, as the collector publishes them."""
    listener = TLSListener(leaf, blocked={"blocked.example"}, host=own_ip)
    yield listener
    listener.close()


@pytest.fixture
def own_closed_port(own_ip: str) -> int:
    """A port of this host's own address where nothing listens: the kernel refuses."""
    with socket.socket() as s:
        s.bind((own_ip, 0))
        return int(s.getsockname()[1])
