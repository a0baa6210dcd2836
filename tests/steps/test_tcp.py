"""probe.steps.tcp against loopback listeners (IPv4 and IPv6), a closed port and a full backlog."""

from __future__ import annotations

import asyncio

import pytest

from probe.steps import tcp


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_connect_ok(host):
    accepted: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        r = await tcp.measure(tcp.TCPSpec(ip=host, port=port, timeout_seconds=2.0))
        for _ in range(100):  # let the server's callback run
            if accepted:
                break
            await asyncio.sleep(0.01)
    assert (r.ip, r.port, r.failure) == (host, port, None)
    assert r.ms > 0
    assert accepted == [host]


async def test_closed_port_is_refused(closed_port):
    r = await tcp.measure(tcp.TCPSpec(ip="127.0.0.1", port=closed_port, timeout_seconds=2.0))
    assert (r.failure, r.port) == ("connection_refused", closed_port)


async def test_dropped_syn_is_timeout(full_backlog_port):
    # loopback cannot blackhole; a full accept queue makes Linux drop the SYN (see conftest)
    r = await tcp.measure(tcp.TCPSpec(ip="127.0.0.1", port=full_backlog_port, timeout_seconds=0.3))
    assert r.failure == "generic_timeout_error"
