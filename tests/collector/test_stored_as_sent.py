"""A record is stored as the probe sent it, its verdict and probe block the collector's."""

from __future__ import annotations

import json

from tests.collector.harness import Collector, record


async def test_a_record_is_stored_as_sent_with_the_collectors_verdict_and_probe(
    collector: Collector,
) -> None:
    probe_id, token = await collector.register(asn=3215, network="Orange")
    sent = record(1)
    sent["added_by_a_newer_probe"] = {"note": "kept", "n": [1, 2.5]}  # SPEC: keys may be added
    sent["verdict"] = {"status": "ok", "method": None, "detail": None, "blockpage": None}
    raw = json.dumps({"records": [sent]}, indent=1).encode()
    assert (await collector.submit(token, raw))[0] == 200
    [item] = await collector.query_all()
    assert item["added_by_a_newer_probe"] == {"note": "kept", "n": [1, 2.5]}
    assert item["verdict"]["status"] == "blocked"  # the collector's, not the one sent
    assert item["probe_verdict"]["status"] == "ok"
    assert item["probe"] == {**sent["probe"], "id": probe_id, "asn": 3215, "network": "Orange"}
    expected = {**sent, "probe": item["probe"], "verdict": item["verdict"]}
    assert {k: v for k, v in item.items() if k not in ("probe_verdict", "received_at")} == expected
