"""The address judge on a real collector (SQLite, PostgreSQL): sweeps in, address flags out.

The same rules as the service flags: two probes agreeing open a flag, or one probe in two cycles;
one sweep does not; what every network shares is an outage; revoked and too-young probes do not
count; the probes reaching the address again close it. The collector's vantage is real, against
loopback servers: an address it cannot reach either is down, never blocked.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
import trustme

from collector.census import targets
from collector.census.vantage import AddressVantage
from collector.handlers import STATE
from collector.store.schema import address_flags, address_vantage
from probe import addresses
from tests.collector.harness import Collector, running
from tests.support.census_rows import entry, sweep

NOW = datetime.datetime.now(datetime.UTC)
T0, T1, T2 = (NOW - datetime.timedelta(minutes=m) for m in (30, 20, 10))
IP = "8.8.4.4"
ORANGE = {"asn": 3215, "network": "Orange"}
FREE = {"asn": 12322, "network": "Free"}


@pytest.fixture
async def c(db_url: str) -> AsyncIterator[Collector]:
    """A collector without a vantage (--no-control): flags rest on the probes alone."""
    async with running(db_url, judge_in_background=False) as found:
        yield found


async def send(c: Collector, token: str, *found: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with c.client.post("/api/v1/sweeps", json={"sweeps": list(found)}, headers=headers) as r:
        assert r.status == 200, await r.text()


async def flags(c: Collector) -> list[Any]:
    await c.app[STATE].census_judged()
    stmt = sa.select(address_flags).order_by(address_flags.c.first_seen)
    return c.store.read(lambda conn: list(conn.execute(stmt)))


async def test_two_probes_agreeing_open_a_flag_with_the_sweeps_as_evidence(c: Collector) -> None:
    (_, a), (_, b) = await c.register(), await c.register()
    one, two = sweep([entry(IP, "tcp")], T1, **ORANGE), sweep([entry(IP, "tcp")], T2, **ORANGE)
    await send(c, a, one)
    await send(c, b, two)
    [flag] = await flags(c)
    assert (flag.ip, flag.method, flag.state, flag.asn, flag.network) == (
        IP, "tcp_ip", "open", 3215, "Orange",
    )  # fmt: skip
    assert sorted(flag.evidence) == sorted([one["id"], two["id"]])
    assert flag.networks == 2
    metrics = await (await c.client.get("/metrics")).text()
    assert 'surblocage_address_flags_opened_total{method="tcp_ip",network="Orange"} 1.0' in metrics


async def test_one_probe_in_two_cycles_opens_one_sweep_does_not(c: Collector) -> None:
    _, a = await c.register()
    await send(c, a, sweep([entry(IP, "tls")], T0, **ORANGE))
    assert await flags(c) == []
    await send(c, a, sweep([entry(IP, "tls")], T1, **ORANGE))
    [flag] = await flags(c)
    assert (flag.method, flag.state, flag.networks) == ("tls", "open", 1)


async def test_sni_filtering_alone_is_no_address_flag(c: Collector) -> None:
    (_, a), (_, b) = await c.register(), await c.register()
    await send(c, a, sweep([entry(IP, "sni")], T1, **ORANGE))
    await send(c, b, sweep([entry(IP, "sni")], T2, **ORANGE))
    assert await flags(c) == []


async def test_the_probes_reaching_it_again_close_the_flag(c: Collector) -> None:
    (_, a), (_, b) = await c.register(), await c.register()
    await send(c, a, sweep([entry(IP, "tcp"), entry("1.1.1.1")], T0, **ORANGE))
    await send(c, b, sweep([entry(IP, "tcp")], T1, **ORANGE))
    [flag] = await flags(c)
    assert flag.state == "open"
    await send(c, a, sweep([entry(IP)], T2, **ORANGE))
    await send(c, b, sweep([entry(IP)], T2, **ORANGE))
    [flag] = await flags(c)
    assert flag.state == "closed"
    assert flag.closed_at == T2


async def test_a_failure_every_network_shares_is_an_outage(c: Collector) -> None:
    (_, a), (_, b), (_, f) = await c.register(), await c.register(), await c.register()
    await send(c, f, sweep([entry(IP, "tcp")], T0, **FREE))
    await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
    await send(c, b, sweep([entry(IP, "tcp")], T2, **ORANGE))
    assert [r for r in await flags(c) if r.state == "open"] == []


async def test_another_network_reaching_it_makes_it_a_block(c: Collector) -> None:
    (_, a), (_, b), (_, f) = await c.register(), await c.register(), await c.register()
    await send(c, f, sweep([entry(IP)], T0, **FREE))
    await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
    await send(c, b, sweep([entry(IP, "tcp")], T2, **ORANGE))
    [flag] = await flags(c)
    assert (flag.network, flag.state) == ("Orange", "open")


async def test_a_revoked_probe_does_not_count(c: Collector) -> None:
    (revoked, a), (_, b) = await c.register(), await c.register()
    await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
    c.app[STATE].findings.revoke(revoked, NOW)
    await send(c, b, sweep([entry(IP, "tcp")], T2, **ORANGE))
    assert await flags(c) == []


async def test_too_young_probes_do_not_count(db_url: str) -> None:
    async with running(
        db_url, judge_in_background=False, **{"flags.min_probe_age_seconds": 3600}
    ) as c:
        (_, a), (_, b) = await c.register(), await c.register()
        await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
        await send(c, b, sweep([entry(IP, "tcp")], T2, **ORANGE))
        assert await flags(c) == []


async def test_probes_of_one_source_network_count_once(c: Collector) -> None:
    (_, a), (_, b) = await c.register(own_network=False), await c.register(own_network=False)
    await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
    await send(c, b, sweep([entry(IP, "tcp")], T1 + datetime.timedelta(seconds=1), **ORANGE))
    assert await flags(c) == []  # one source, one cycle


async def test_addresses_the_collector_never_dials_are_not_judged(c: Collector) -> None:
    (_, a), (_, b) = await c.register(), await c.register()
    await send(c, a, sweep([entry("10.0.0.1", "tcp")], T1, **ORANGE))
    await send(c, b, sweep([entry("10.0.0.1", "tcp")], T2, **ORANGE))
    assert await flags(c) == []


# The collector's vantage, real, on loopback: a TLS server that completes handshakes, and a
# port nobody listens on. The policy never dials loopback: the vantage looks at an allowed
# network, 10.99.0.0/16, rerouted to 127.0.0.0/8 at its one seam.
ALLOWED = "10.99.0.0/16"


def to_loopback(ip: str) -> str:
    return ip.replace("10.99.", "127.0.", 1)


@pytest.fixture
async def tls_port() -> AsyncIterator[int]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("www.example.org").configure_cert(context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.2", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def refused_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.3", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


def vantage_rows(c: Collector) -> dict[str, str | None]:
    rows = c.store.read(lambda conn: list(conn.execute(sa.select(address_vantage))))
    return {r.ip: r.failure for r in rows}


@pytest.mark.parametrize("reached", [True, False], ids=["reached", "down"])
async def test_the_collectors_vantage_settles_blocked_or_down(
    db_url: str, tls_port: int, reached: bool
) -> None:
    allowed = addresses.networks([ALLOWED])
    vantage = AddressVantage(100, allowed, timeout_seconds=2, dial_as=to_loopback)
    ip, port = ("10.99.0.2", tls_port) if reached else ("10.99.0.3", await refused_port())
    overrides = {"network.allow_networks": [ALLOWED]}
    async with running(
        db_url, judge_in_background=False, address_vantage=vantage, **overrides
    ) as c:
        (_, a), (_, b) = await c.register(), await c.register()
        await send(c, a, sweep([entry(ip, "tcp", port=port)], T1, **ORANGE))
        await send(c, b, sweep([entry(ip, "tcp", port=port)], T2, **ORANGE))
        found = await flags(c)
        if reached:
            assert [(f.ip, f.state) for f in found] == [(ip, "open")]
            assert vantage_rows(c) == {ip: None}
        else:
            assert found == []
            assert vantage_rows(c) == {ip: "connection_refused"}


async def test_the_vantage_tries_the_neutral_name_after_a_refused_one() -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("www.example.com").configure_cert(context)

    def refuse_but_neutral(sock: Any, name: str | None, ctx: Any) -> int | None:
        return None if name == "www.example.com" else ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE

    context.sni_callback = refuse_but_neutral

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.4", 0, ssl=context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        allowed = addresses.networks([ALLOWED])
        vantage = AddressVantage(100, allowed, timeout_seconds=2, dial_as=to_loopback)
        reached = await vantage.look("10.99.0.4", port, "blocked.example")
        assert (reached.ip, reached.sni, reached.failure) == ("10.99.0.4", "blocked.example", None)
        refused = await vantage.look("10.99.0.4", await refused_port(), "blocked.example")
        assert refused.failure == "connection_refused"
        assert await vantage.look_all({"127.0.0.4": (port, "x.example")}) == []  # never loopback


async def test_an_opened_flag_is_published_first_at_the_next_computation(c: Collector) -> None:
    cache = c.app[STATE].targets
    assert json.loads((await cache.get())[0])["addresses"] == []
    (_, a), (_, b) = await c.register(), await c.register()
    await send(c, a, sweep([entry(IP, "tcp")], T1, **ORANGE))
    await send(c, b, sweep([entry(IP, "tcp")], T2, **ORANGE))
    assert len(await flags(c)) == 1
    cache._at -= targets.MIN_AGE_SECONDS + 1  # the clock, past the minimum age (not the maximum)
    await cache.get()  # starts computing again
    await cache.settled()
    [first] = json.loads((await cache.get())[0])["addresses"]
    assert (first["ip"], first["reasons"]) == (IP, ["flagged"])


@pytest.mark.postgres
async def test_two_collector_processes_judge_each_sweep_once(pg_url: str) -> None:
    async with (
        running(pg_url, judge_in_background=False) as one,
        running(pg_url, judge_in_background=False) as two,
    ):
        probes = [await one.register() for _ in range(4)]
        for n, (_, token) in enumerate(probes):
            started = T0 + datetime.timedelta(minutes=n)
            await send(one, token, sweep([entry(IP, "tcp"), entry("1.1.1.1")], started, **ORANGE))
        judged = await asyncio.gather(
            one.app[STATE].address_judge.drain(), two.app[STATE].address_judge.drain()
        )
        assert sum(judged) == 4
        [flag] = await flags(two)
        assert (flag.state, flag.networks, len(flag.evidence)) == ("open", 4, 4)
