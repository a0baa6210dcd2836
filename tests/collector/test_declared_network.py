"""The ingest metrics' network: the ASN database's when configured, with the network the probe
declared kept as a label of its own."""

from __future__ import annotations

from typing import Any

import prometheus_client.parser

from collector.store import migrate
from tests.collector.harness import record, running


def ingested(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["network"], s.labels["declared_network"], s.labels["status"]): s.value
        for family in prometheus_client.parser.text_string_to_metric_families(text)
        if family.name == "surblocage_records_ingested"
        for s in family.samples
        if s.name == "surblocage_records_ingested_total" and s.value
    }


async def submitted(url: str, overrides: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    async with running(url, **overrides) as c:
        _, token = await c.register()
        r = record(1)
        r["probe"]["network"] = "Line ISP"
        status, answer = await c.submit(token, {"records": [r]})
        assert status == 200, answer
        async with c.client.get("/metrics") as m:
            return ingested(await m.text())


async def test_the_asn_database_decides_the_network_label(tmp_path: Any, asn_file: str) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    found = await submitted(url, {"asn.database": asn_file})
    assert {k[:2]: v for k, v in found.items()} == {("Test ISP", "Line ISP"): 1.0}


async def test_without_one_the_declared_network_is_the_label(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    found = await submitted(url, {})
    assert {k[:2]: v for k, v in found.items()} == {("Line ISP", "Line ISP"): 1.0}
