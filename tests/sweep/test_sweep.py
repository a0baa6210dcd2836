"""The sweep engine against real loopback servers: what each address's entry says."""

from __future__ import annotations

from probe import failures
from probe.address_list import Address
from probe.costs import TCP_BYTES, TLS_BYTES
from probe.record import ProbeInfo
from probe.sweep import (
    ENTRIES_PER_SWEEP,
    NEUTRAL_SNI,
    Entry,
    RateLimiter,
    Sweep,
    SweepOptions,
    documents,
    sweep,
)
from tests.steps.conftest import ServeRaw, never_answer
from tests.support.census_collector import check_sweep
from tests.sweep.conftest import TLSListener

FAST = SweepOptions(rate=1000.0, tcp_timeout_seconds=0.5, tls_timeout_seconds=0.5)
PROBE = ProbeInfo(id="p1", software="surblocage/test", asn=64500, network="Lab", cc="FR")


async def test_a_listener_that_completes_tls_is_all_null(tls_listener: TLSListener) -> None:
    a = Address("127.0.0.1", tls_listener.port, "www.example.org")
    result = await sweep([a], FAST)
    assert [e.to_dict() for e in result.entries] == [
        {"ip": "127.0.0.1", "port": tls_listener.port, "sni": "www.example.org", "tcp": None,
         "tls": None, "ms": result.entries[0].ms}
    ]  # fmt: skip
    assert tls_listener.names == ["www.example.org"]  # no neutral retry after a success
    assert result.failures() == 0
    assert result.bytes_estimated == TCP_BYTES + TLS_BYTES


async def test_a_refused_port_has_no_tls(closed_port: int) -> None:
    result = await sweep([Address("127.0.0.1", closed_port, "a.example")], FAST)
    assert result.entries[0].to_dict() == {
        "ip": "127.0.0.1", "port": closed_port, "sni": "a.example",
        "tcp": failures.CONNECTION_REFUSED, "ms": result.entries[0].ms,
    }  # fmt: skip
    assert result.failures() == 1


async def test_a_dropped_syn_is_a_timeout(full_backlog_port: int) -> None:
    result = await sweep([Address("127.0.0.1", full_backlog_port, "a.example")], FAST)
    (entry,) = result.entries
    assert entry.tcp == failures.TIMEOUT and entry.steps == 1
    assert entry.ms >= 450


async def test_a_server_silent_after_connect_times_out_twice(serve_raw: ServeRaw) -> None:
    port = await serve_raw(never_answer)
    result = await sweep([Address("127.0.0.1", port, "a.example")], FAST)
    assert result.entries[0].to_dict() == {
        "ip": "127.0.0.1", "port": port, "sni": "a.example", "tcp": None,
        "tls": failures.TIMEOUT, "tls_neutral": failures.TIMEOUT, "ms": result.entries[0].ms,
    }  # fmt: skip


async def test_sni_filtering_resets_the_name_and_the_neutral_sni_passes(
    tls_listener: TLSListener,
) -> None:
    tls_listener.blocked.add("blocked.example")
    a = Address("127.0.0.1", tls_listener.port, "blocked.example")
    result = await sweep([a], FAST)
    entry = result.entries[0].to_dict()
    assert (entry["tcp"], entry["tls"], entry["tls_neutral"]) == (
        None, failures.CONNECTION_RESET, None,
    )  # fmt: skip
    assert tls_listener.names == [NEUTRAL_SNI]
    assert result.failures() == 1
    assert result.bytes_estimated == 2 * (TCP_BYTES + TLS_BYTES)


async def test_entries_keep_the_published_order(
    tls_listener: TLSListener, closed_port: int
) -> None:
    targets = [
        Address("127.0.0.1", closed_port if i % 3 == 0 else tls_listener.port, f"n{i}.example")
        for i in range(30)
    ]
    result = await sweep(targets, SweepOptions(rate=1000.0, concurrency=7))
    assert [e.address for e in result.entries] == targets
    assert [e.tcp for e in result.entries][:4] == [failures.CONNECTION_REFUSED, None, None,
                                                   failures.CONNECTION_REFUSED]  # fmt: skip


async def test_the_budget_stops_new_addresses(tls_listener: TLSListener) -> None:
    targets = [Address("127.0.0.1", tls_listener.port, f"n{i}.example") for i in range(10)]
    # three addresses' worth: the fourth would start past the budget
    options = SweepOptions(rate=1000.0, concurrency=5, budget_bytes=3 * (TCP_BYTES + TLS_BYTES))
    result = await sweep(targets, options)
    assert len(result.entries) == 3
    assert result.skipped_budget == 7
    assert [e.address.sni for e in result.entries] == ["n0.example", "n1.example", "n2.example"]


async def test_the_deadline_stops_new_addresses(full_backlog_port: int) -> None:
    targets = [Address("127.0.0.1", full_backlog_port, f"n{i}.example") for i in range(5)]
    options = SweepOptions(rate=1000.0, concurrency=1, tcp_timeout_seconds=0.3,
                           deadline_seconds=0.1)  # fmt: skip
    result = await sweep(targets, options)
    assert len(result.entries) == 1  # started before the deadline, finished after
    assert result.skipped_deadline == 4


async def test_every_connection_takes_a_token(tls_listener: TLSListener) -> None:
    """Two addresses, one SNI-filtered: three connections, three tokens."""
    taken: list[float] = []

    class Counting(RateLimiter):
        async def take(self) -> None:
            taken.append(0.0)
            await super().take()

    tls_listener.blocked.add("blocked.example")
    targets = [
        Address("127.0.0.1", tls_listener.port, "blocked.example"),
        Address("127.0.0.1", tls_listener.port, "open.example"),
    ]
    await sweep(targets, FAST, limiter=Counting(1000.0))
    assert len(taken) == 3


def _entries(n: int) -> list[Entry]:
    return [Entry(Address(f"192.0.2.{i % 250}", 443, "a.example"), steps=2) for i in range(n)]


def test_documents_split_at_1000_entries_with_their_own_ids() -> None:
    result = Sweep(started_at="2026-12-06T04:00:00.000Z", entries=_entries(2001), duration_ms=9)
    docs = documents(result, PROBE)
    assert [len(d["entries"]) for d in docs] == [ENTRIES_PER_SWEEP, ENTRIES_PER_SWEEP, 1]
    assert len({d["id"] for d in docs}) == 3
    for i, doc in enumerate(docs):
        check_sweep(doc, f"docs[{i}]")  # the test collector's strict reading of the spec
    assert docs[0]["probe"] == {"id": "p1", "software": "surblocage/test", "asn": 64500,
                                "network": "Lab", "cc": "FR"}  # fmt: skip
    assert docs[2]["entries"][0] == {"ip": "192.0.2.0", "port": 443, "sni": "a.example",
                                     "tcp": None, "tls": None, "ms": 0}  # fmt: skip


def test_no_entries_no_document() -> None:
    assert documents(Sweep(started_at="2026-12-06T04:00:00Z"), PROBE) == []


def test_concurrency_is_enough_for_the_rate() -> None:
    """The rate times an address's longest time (TCP, TLS, neutral TLS), capped."""
    assert SweepOptions(rate=20.0, tcp_timeout_seconds=2.0, tls_timeout_seconds=2.0).slots() == 120
    assert SweepOptions(rate=20.0, tcp_timeout_seconds=5.0, tls_timeout_seconds=5.0).slots() == 256
    assert SweepOptions(rate=20.0, concurrency=3).slots() == 3
