"""Sweep documents in the spool and through the delivery: kept, capped, sent, refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probe.client import CollectorClient
from probe.daemon import spool as spool_mod
from probe.daemon import status
from probe.daemon.delivery import Delivery, Enrollment
from probe.daemon.spool import Spool
from tests.support.census_collector import CensusCollector, serving


def sweep_doc(i: int) -> tuple[str, str]:
    doc = {
        "schema": 1, "id": f"4b0d7a43-64f4-4c1f-8f0e-{i:012d}",
        "probe": {"id": None, "software": "surblocage/0", "asn": None, "network": None,
                  "cc": "FR"},
        "started_at": "2026-12-06T04:00:00.000Z", "duration_ms": 5,
        "entries": [{"ip": "8.8.8.8", "port": 443, "sni": "dns.google", "tcp": None,
                     "tls": None, "ms": 3}],
    }  # fmt: skip
    return str(doc["id"]), json.dumps(doc)


def test_sweeps_are_kept_apart_from_records_and_capped(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(spool_mod, "SWEEPS_MAX", 3)
    now = [1000.0]
    spool = Spool(tmp_path / "spool.db", max_age_days=1.0, clock=lambda: now[0])
    assert spool.add_sweeps([sweep_doc(1), sweep_doc(2)]) == 0
    assert spool.add_sweeps([sweep_doc(3), sweep_doc(4)]) == 1  # the oldest goes
    assert [s.id[-1] for s in spool.peek_sweeps(10)] == ["2", "3", "4"]
    assert spool.depth() == 0 and spool.sweep_depth() == 3
    now[0] += 2 * 86400.0  # past max_age_days
    spool.prune()
    assert spool.sweep_depth() == 0
    stats = spool.stats()
    assert (stats.sweeps, stats.sweeps_dropped) == (0, 4)
    spool.close()


async def test_delivery_sends_sweeps_and_drops_one_refused_for_good(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.add_sweeps([sweep_doc(i) for i in range(12)])
    async with serving(CensusCollector()) as c:
        async with CollectorClient(base_url=c.url) as client:
            delivery = Delivery(spool, client, Enrollment(tmp_path, c.url))
            await delivery.drain()  # registers, then 10 and 2
            assert len(c.sweeps) == 12 and c.errors == []
            posts = [r for r in c.requests if r[1] == "/api/v1/sweeps"]
            assert len(posts) == 2
            spool.add_sweeps([sweep_doc(20), sweep_doc(21)])
            c.refuse_sweeps = 400
            await delivery.drain()  # halved to one, each refused alone: dropped, counted
    stats = spool.stats()
    assert (stats.sweeps, stats.sweeps_delivered, stats.sweeps_refused) == (0, 12, 2)
    assert all(d["probe"]["id"] == "p-census-test" for d in c.sweeps.values())
    spool.close()


def test_status_shows_the_last_sweep() -> None:
    text = status._sweep_text(
        {"at": "2026-12-06T04:01:00Z", "outcome": "done", "addresses": 1990, "failures": 12,
         "skipped_budget": 10, "skipped_deadline": 0}
    )  # fmt: skip
    assert text == (
        "2026-12-06T04:01:00Z: 1990 addresses, 12 failed, 10 skipped (budget or deadline)"
    )
