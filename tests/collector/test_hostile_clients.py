"""Slow and many clients against a real collector app on loopback, behind its connection guard
(the same site `serve` runs): header and body timeouts, connections per client and in all, body
sizes per route, rate limits per /64, and client addresses only from trusted proxies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client

from collector import handlers, peers
from collector.app import build_app
from collector.config import load_config
from collector.judge import open_store
from probe import addresses
from tests.collector.harness import FAST
from tests.support.collector_process import CollectorProcess, write_config

QUICK = {"server.header_timeout_seconds": 0.5, "server.body_timeout_seconds": 0.5}


@contextlib.asynccontextmanager
async def serving(db_url: str, **overrides: Any) -> AsyncIterator[int]:
    """Serve the collector app on 127.0.0.1 as `serve` does; yield its port."""
    cfg = load_config(None, {**FAST, "database.url": db_url, **overrides})
    store = open_store(db_url)
    app = build_app(cfg, store=store, registry=prometheus_client.CollectorRegistry())
    runner = peers.runner(app)
    await runner.setup()
    site = peers.GuardedSite(runner, "127.0.0.1", 0, app[handlers.STATE].guard)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
        store.close()


async def dribble(port: int, head: bytes, seconds: float) -> tuple[float, bytes]:
    """Send ``head``, then a byte every 0.1 s for up to ``seconds``; return how long the server
    kept the connection and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    t0, answer = time.monotonic(), b""
    try:
        while time.monotonic() - t0 < seconds:
            writer.write(b"x")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), 0.1)
                if answer or reader.at_eof():
                    break
    except ConnectionError:
        pass
    writer.close()
    return time.monotonic() - t0, answer


async def test_a_client_dribbling_its_headers_is_cut_after_the_header_timeout(
    sqlite_url: str,
) -> None:
    async with serving(sqlite_url, **QUICK) as port:
        held, _ = await dribble(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 5.0)
    assert held < 2.0


async def test_a_client_dribbling_its_body_is_cut_after_the_body_timeout(
    sqlite_url: str,
) -> None:
    head = b"POST /api/v1/probes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    async with serving(sqlite_url, **QUICK) as port:
        held, answer = await dribble(port, head, 5.0)
    assert held < 2.0
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_connections_are_capped_per_client_and_in_all(sqlite_url: str) -> None:
    async def connections(port: int, n: int) -> list[bool]:
        """Open ``n`` connections; return which the server keeps open."""
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
        await asyncio.sleep(0.2)
        kept = []
        for reader, writer in opened:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                kept.append(
                    (await asyncio.wait_for(reader.read(12), 2)).startswith(b"HTTP/1.1 200")
                )
            except ConnectionError:
                kept.append(False)
            writer.close()
        return kept

    async with serving(sqlite_url, **{"server.max_connections_per_client": 2}) as port:
        assert await connections(port, 3) == [True, True, False]
    async with serving(sqlite_url, **{"server.max_connections": 3}) as port:
        assert await connections(port, 4) == [True, True, True, False]


async def post(port: int, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    """POST ``body`` over a fresh connection; return the status and the JSON answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    top, _, text = answer.partition(b"\r\n\r\n")
    return int(top.split()[1]), json.loads(text)


async def test_a_registration_body_is_limited_to_its_own_size(sqlite_url: str) -> None:
    body = json.dumps({"network": "x", "padding": "y" * 5000}).encode()
    async with serving(sqlite_url) as port:
        status, answer = await post(port, "/api/v1/probes", body)
    assert status == 413
    assert answer == {"error": "body: larger than the limit of 4096 bytes"}


def test_rate_keys_are_an_ipv4_address_or_an_ipv6_slash_64() -> None:
    assert peers.rate_key("192.0.2.7") == "192.0.2.7"
    assert peers.rate_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert peers.rate_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert peers.rate_key("::ffff:192.0.2.7") == "192.0.2.7"


async def test_registrations_from_one_ipv6_slash_64_share_one_budget(sqlite_url: str) -> None:
    limits = {"limits.rate_per_source_per_minute": 1, "server.trusted_proxies": ["127.0.0.1/32"]}
    async with serving(sqlite_url, **limits) as port:
        statuses = [
            (await post(port, "/api/v1/probes", b"{}", X_Forwarded_For=a))[0]
            for a in ("2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:2::1")
        ]
    assert statuses == [201, 429, 201]  # the second shares the first's /64


async def test_forwarded_addresses_count_only_from_a_trusted_proxy(sqlite_url: str) -> None:
    limits = {"limits.rate_per_source_per_minute": 1}
    forwarded = [
        {"X_Forwarded_For": "198.51.100.1"},
        {"X_Forwarded_For": "198.51.100.2, 127.0.0.1"},  # the proxy's own hop is skipped
        {"Forwarded": 'for="198.51.100.3:4711";proto=https'},
        {"Forwarded": 'for="[2001:db8::3]"'},
    ]
    async with serving(sqlite_url, **limits, **{"server.trusted_proxies": ["127.0.0.0/8"]}) as port:
        trusted = [(await post(port, "/api/v1/probes", b"{}", **h))[0] for h in forwarded]
    async with serving(sqlite_url, **limits) as port:
        ignored = [(await post(port, "/api/v1/probes", b"{}", **h))[0] for h in forwarded]
    assert trusted == [201, 201, 201, 201]  # four clients behind the proxy
    assert ignored == [201, 429, 429, 429]  # one client writing headers


def test_a_forged_hop_before_the_proxy_is_not_taken_for_the_client() -> None:
    trusted = addresses.networks(["10.0.0.0/8"])
    headers = _Headers({"X-Forwarded-For": ["203.0.113.9, 198.51.100.4, 10.0.0.2"]})
    # the client wrote 203.0.113.9 itself; the proxies saw 198.51.100.4
    assert peers.client_address("10.0.0.1", headers, trusted) == "198.51.100.4"
    assert peers.client_address("192.0.2.1", headers, trusted) == "192.0.2.1"


class _Headers:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def getall(self, name: str, default: list[str]) -> list[str]:
        return self.values.get(name, default)


async def test_the_serve_process_cuts_a_client_dribbling_its_headers(
    sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    server = {"header_timeout_seconds": 0.5, "max_connections_per_client": 2}
    config = write_config(tmp_path / "collector.json", server=server)
    proc = CollectorProcess(sqlite_url, tmp_path / "stderr.log", "--config", config)
    try:
        held, _ = await dribble(proc.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 5.0)
    finally:
        proc.stop()
    assert held < 2.0
