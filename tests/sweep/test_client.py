"""The client's census calls against the strict loopback collector: the list, the uploads."""

from __future__ import annotations

from typing import Any

import pytest

from probe import client as client_mod
from probe.address_list import parse_list
from probe.client import CollectorClient, CollectorRefused, CollectorUnavailable
from tests.support.census_collector import TOKEN, CensusCollector, serving


def big_list(n: int) -> dict[str, Any]:
    items = [
        {"ip": f"8.{i // 65536}.{i // 256 % 256}.{i % 256}", "port": 443,
         "sni": f"name-{i}.example", "reasons": ["shared"], "domains": i}
        for i in range(n)
    ]  # fmt: skip
    return {"addresses": items, "generated_at": "2026-12-06T04:00:00Z"}


async def test_a_long_list_is_read_whole() -> None:
    async with serving(CensusCollector(addresses=big_list(5000))) as c:
        async with CollectorClient(base_url=c.url) as client:
            doc = await client.addresses()
    parsed = parse_list(doc, 2000)
    assert len(parsed.addresses) == 2000 and parsed.beyond_cap == 3000


async def test_a_list_past_the_cap_is_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "ADDRESSES_MAX_BYTES", 100_000)
    async with serving(CensusCollector(addresses=big_list(5000))) as c:
        async with CollectorClient(base_url=c.url) as client:
            with pytest.raises(CollectorUnavailable, match="longer than 100000 bytes"):
                await client.addresses()


async def test_a_404_is_no_list() -> None:
    async with serving(CensusCollector(addresses=None)) as c:
        async with CollectorClient(base_url=c.url) as client:
            assert await client.addresses() is None


async def test_sweeps_go_up_gzipped_and_are_acknowledged() -> None:
    doc = {
        "schema": 1, "id": "4b0d7a43-64f4-4c1f-8f0e-3a4d2f3b1c00",
        "probe": {"id": "p", "software": "surblocage/0", "asn": None, "network": None, "cc": "FR"},
        "started_at": "2026-12-06T04:00:00.000Z", "duration_ms": 5,
        "entries": [{"ip": "8.8.8.8", "port": 443, "sni": "dns.google", "tcp": None, "tls": None,
                     "ms": 3}],
    }  # fmt: skip
    async with serving(CensusCollector()) as c:
        async with CollectorClient(base_url=c.url) as client:
            ack = await client.submit_sweeps(TOKEN, [doc])
            assert (ack.accepted, ack.inserted, ack.duplicates) == (1, 1, 0)
            again = await client.submit_sweeps(TOKEN, [doc])
            assert (again.inserted, again.duplicates) == (0, 1)
            with pytest.raises(CollectorRefused) as refused:
                await client.submit_sweeps("wrong", [doc])
            assert refused.value.status == 401
    assert c.errors == []
    assert ("POST", "/api/v1/sweeps", "gzip") in c.requests
