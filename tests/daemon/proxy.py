"""A TCP proxy to the collector that can hold its answers to uploads (kill -9 mid-upload)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable


class HoldingProxy:
    """A TCP proxy to the collector that, while ``hold`` is set, forwards uploads but swallows
    the collector's answers to them: the collector has committed the batch, the probe waits.

    ``held`` is set when an answer was swallowed. HTTP/1.1 without pipelining (aiohttp) sends a
    request only after reading the previous answer, so the answer that follows the bytes of
    ``POST /api/v1/measurements`` on a connection is that upload's.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.hold = threading.Event()
        self.held = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._sockets.append(client)
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()  # the collector is down: so is the proxy
                continue
            self._sockets.append(server)
            uploading = threading.Event()
            threading.Thread(target=self._up, args=(client, server, uploading), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, uploading), daemon=True
            ).start()

    def _up(self, src: socket.socket, dst: socket.socket, uploading: threading.Event) -> None:
        for chunk in _chunks(src):
            if b"POST /api/v1/measurements" in chunk:
                uploading.set()
            if not _send(dst, chunk):
                break
        _close(dst)

    def _down(self, src: socket.socket, dst: socket.socket, uploading: threading.Event) -> None:
        for chunk in _chunks(src):
            if uploading.is_set() and self.hold.is_set():
                self.held.set()
                continue  # swallowed: the probe never learns that the batch was stored
            uploading.clear()
            if not _send(dst, chunk):
                break
        _close(dst)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            _close(sock)
            sock.close()


def _chunks(sock: socket.socket) -> Iterable[bytes]:
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False  # the other side is gone (a killed probe)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
