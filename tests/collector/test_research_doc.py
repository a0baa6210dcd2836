"""docs/research.md runs: its python blocks, in order, against a real collector holding records,
print the timeline the document shows."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import io
import re
from typing import Any

from tests.collector.harness import ROOT, record, running
from tests.collector.test_export_ooni import CASES
from tests.support import records

DOC = ROOT / "docs" / "research.md"
BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOC_COLLECTOR = '"http://127.0.0.1:8080"'
ASN = {"Free": 12322, "Orange": 3215}
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.UTC)


def blocks(kind: str) -> list[str]:
    """The code blocks of the document whose info string is exactly ``kind``."""
    return [code for info, code in BLOCK.findall(DOC.read_text()) if info.strip() == kind]


def at(hours: float, **fields: Any) -> dict[str, Any]:
    return {"started_at": T0 + datetime.timedelta(hours=hours), **fields}


BLOCKED: dict[str, Any] = {}  # the builder's default record: the resolver answers 127.0.0.1
OK, INCONCLUSIVE = CASES["ok"], CASES["inconclusive"]
# (network, hours after 2026-03-01 20:00 UTC, the record's steps)
PLAN = [
    ("Free", 0, OK),
    ("Free", 1, OK),
    ("Free", 1.5, OK),
    ("Free", 2, INCONCLUSIVE),
    ("Free", 3, OK),
    ("Orange", 0, BLOCKED),
    ("Orange", 0.5, OK),  # the hour's worst verdict wins
    ("Orange", 1, BLOCKED),
    ("Orange", 3, BLOCKED),
    ("Orange", 52, BLOCKED),  # 2026-03-04: after until
]


def run_blocks(url: str) -> str:
    """Run the document's python blocks in one namespace; return what they printed."""
    namespace: dict[str, Any] = {"__name__": "research_doc"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks("python"):
            exec(compile(code.replace(DOC_COLLECTOR, repr(url)), str(DOC), "exec"), namespace)
    return out.getvalue()


async def test_the_documented_timeline_is_what_the_code_draws(db_url: str) -> None:
    assert DOC_COLLECTOR in blocks("python")[0]
    async with running(db_url) as c:
        n = 0
        for network in ("Free", "Orange"):
            _, token = await c.register(network=network)
            batch = []
            for where, hours, steps in PLAN:
                if where == network:
                    n += 1
                    probe = dataclasses.replace(records.ORANGE, network=network, asn=ASN[network])
                    batch.append(record(n, **{**steps, **at(hours), "probe": probe}))
            n += 1  # another service, the same hour: not drawn
            batch.append(record(n, service="deezer", domain="www.deezer.com", **at(2)))
            status, answer = await c.submit(token, {"records": batch})
            assert status == 200, answer
        url = str(c.client.make_url("")).rstrip("/")
        printed = await asyncio.to_thread(run_blocks, url)
    [expected] = blocks("text")
    assert printed.startswith("9 records of mycanal\n7 network-hours\n")
    assert printed.endswith(expected)
