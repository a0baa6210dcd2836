"""Resolving the domain index against a real DNS server on loopback, recorded in a real store."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa

from collector.census import index, resolve
from collector.store import Store, migrate, open_store
from collector.store.schema import domain_addresses, domains
from probe import addresses
from tests.store.conftest import db_url  # noqa: F401  (a fixture, shared)
from tests.support import dns_server
from tests.support.dns_server import Zone

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
# Public addresses (the address policy keeps them): the DNS server only names them, no packet
# ever goes to them.
V4, V4B, V6 = "93.184.215.14", "151.101.1.69", "2606:4700::6810:84e5"
ZONES = {
    "a.example": Zone([V4]),
    "both.example": Zone([V4, V6, "10.0.0.7", "127.0.0.1"]),
    "alias.example": Zone([V4B], cnames=["edge.cdn.example", "x.cdn.example"]),
    "gone.example": Zone(rcode="NXDOMAIN"),
    "broken.example": Zone(rcode="SERVFAIL"),
    "silent.example": Zone(silent=True),
    "private.example": Zone(["10.0.0.7", "192.168.1.1"]),
}


RESOLVERS: list[resolve.Resolver] = []


def fast(server: dns_server.DNSServer, *allowed: str) -> resolve.Resolver:
    """The test server as the resolver, with short timeouts (a silent name costs 2 x 0.2 s)."""
    resolver = resolve.Resolver(
        server.host, server.port, addresses.networks(allowed), timeout_seconds=0.2, attempts=2
    )
    RESOLVERS.append(resolver)
    return resolver


@pytest.fixture(autouse=True)
async def closed() -> AsyncIterator[None]:
    """Close the sockets of the test's resolvers before its event loop ends."""
    yield
    while RESOLVERS:
        RESOLVERS.pop().close()
    await asyncio.sleep(0)  # the transports' close runs in the loop


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    migrate(db_url)
    opened = open_store(db_url)
    yield opened
    opened.close()


async def test_lookup_answers_a_aaaa_cname_and_tells_nothing_from_failure() -> None:
    async with dns_server.serving() as server:
        server.zones.update(ZONES)
        r = fast(server)
        assert await r.lookup("a.example") == [V4]
        assert sorted(await r.lookup("both.example") or []) == [V6, V4]  # private, loopback: no
        assert await r.lookup("alias.example") == [V4B]  # the final answer of the chain
        assert await r.lookup("gone.example") == []
        assert await r.lookup("nothing.example") == []  # NOERROR, no data
        assert await r.lookup("broken.example") is None
        assert await r.lookup("silent.example") is None
        asked = server.names()
        assert asked.count("silent.example") == 4  # A and AAAA, two tries each: bounded


async def test_non_public_answers_are_kept_only_within_allowed_networks() -> None:
    async with dns_server.serving() as server:
        server.zones.update(ZONES)
        assert await fast(server).lookup("private.example") == []
        allowed = fast(server, "10.0.0.0/8", "127.0.0.0/8")
        assert await allowed.lookup("private.example") == ["10.0.0.7"]
        found = await allowed.lookup("both.example")
        assert sorted(found or []) == sorted([V4, "10.0.0.7", V6])  # never loopback


async def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    async with dns_server.serving() as server:
        server.zones["big.example"] = Zone([V4, V4B], truncate="empty")
        assert sorted(await fast(server).lookup("big.example") or []) == sorted([V4, V4B])
        assert ("tcp", "big.example") in [
            (t, q.question[0].name.to_text(omit_final_dot=True)) for t, q in server.queries
        ]


def stored(store: Store) -> tuple[dict[str, object], set[tuple[str, str, object, object]]]:
    d, a = domains.c, domain_addresses.c

    def read(conn: sa.Connection) -> tuple[dict[str, object], set[tuple[str, str, object, object]]]:
        resolved = {r.name: r.resolved_at for r in conn.execute(sa.select(d.name, d.resolved_at))}
        joined = sa.select(d.name, a.ip, a.first_seen, a.last_seen).join(
            domains, d.id == a.domain_id
        )
        return resolved, {tuple(r) for r in conn.execute(joined)}  # type: ignore[misc]

    return store.read(read)


async def test_passes_record_answers_widen_spans_and_keep_failures_unrecorded(
    store: Store,
) -> None:
    names = [(n, i) for i, n in enumerate(sorted(ZONES), start=1)]
    store.write(index.upsert, names, T0, False)
    async with dns_server.serving() as server:
        server.zones.update(ZONES)
        done: list[tuple[str, int]] = []
        first = resolve.Pass(
            store, fast(server), 1000.0, datetime.datetime.now(datetime.UTC),
            counted=lambda result, n: done.append((result, n)),
        )  # fmt: skip
        summary = await first.run()
        assert (summary.names, summary.answered, summary.failures) == (7, 3, 2)
        assert summary.addresses == 3  # distinct: V4 (of two names), V6, V4B
        totals = {r: sum(n for x, n in done if x == r) for r in resolve.RESULTS}
        assert totals == {"addresses": 3, "none": 2, "failed": 2}
        resolved, pairs = stored(store)
        assert resolved["broken.example"] is None and resolved["silent.example"] is None
        t1 = resolved["a.example"]
        assert t1 is not None and resolved["gone.example"] is not None
        assert ("a.example", V4, t1, t1) in pairs
        assert store.read(index.current, "both.example") == {V4, V6}

        # the names move: a.example to V4B; gone.example comes back; silent.example still silent
        server.zones["a.example"] = Zone([V4B])
        server.zones["gone.example"] = Zone([V6])
        second = await resolve.Pass(
            store, fast(server), 1000.0, datetime.datetime.now(datetime.UTC)
        ).run()
        assert (second.names, second.failures) == (7, 2)
    resolved, pairs = stored(store)
    t2 = resolved["a.example"]
    assert t2 is not None and t2 > t1
    assert ("a.example", V4, t1, t1) in pairs  # last month's census stays true
    assert ("a.example", V4B, t2, t2) in pairs
    assert ("both.example", V4, t1, resolved["both.example"]) in pairs  # widened
    assert store.read(index.current, "a.example") == {V4B}
    assert store.read(index.current, "gone.example") == {V6}
    assert store.read(index.current, "broken.example") == set()


async def test_a_pass_resolves_only_the_names_due(store: Store) -> None:
    store.write(index.upsert, [("a.example", 1), ("gone.example", 2)], T0, False)
    ids = dict(store.read(lambda c: c.execute(sa.select(domains.c.name, domains.c.id)).all()))
    store.write(index.record, T0 + datetime.timedelta(days=2), {ids["a.example"]: [V4]})
    async with dns_server.serving() as server:
        server.zones.update(ZONES)
        summary = await resolve.Pass(
            store, fast(server), 1000.0, T0 + datetime.timedelta(days=1)
        ).run()
        assert server.names().count("a.example") == 0
    assert summary.names == 1


async def test_a_stopped_pass_asks_nothing_more(store: Store) -> None:
    store.write(index.upsert, [(f"n{i}.example", i) for i in range(50)], T0, False)
    stop = asyncio.Event()
    stop.set()
    async with dns_server.serving(default=Zone([V4])) as server:
        summary = await resolve.Pass(
            store, fast(server), 1000.0, datetime.datetime.now(datetime.UTC), stop=stop
        ).run()
        assert server.names() == []
    assert summary.names == 0
    assert store.read(index.count_due, datetime.datetime.now(datetime.UTC)) == 50
