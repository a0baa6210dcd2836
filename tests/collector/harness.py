"""Test harness of the collector: records as probes submit them, an in-process collector.

An in-process collector is the real app on an aiohttp TestServer (loopback, a real port); a
collector process is tests/support/collector_process.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import jsonschema
import prometheus_client
import sqlalchemy as sa
from aiohttp import test_utils

from collector import openapi
from collector.app import build_app
from collector.config import load_config
from collector.judge import open_store
from collector.store import MeasurementQuery, Store
from collector.store.schema import probes
from probe.record import HTTPResult, Measurement, new_id
from tests.support import records
from tests.support.collector_process import ROOT as ROOT  # re-exported
from tests.support.collector_process import CollectorProcess as CollectorProcess  # re-exported

# generous limits: the suite submits quickly from one address
FAST = {
    "control.enabled": False,
    "limits.rate_per_probe_per_minute": 1_000_000,
    "limits.rate_per_source_per_minute": 1_000_000,
    # the suite's records are dated in the past, from probes registered a moment before
    "ingest.max_record_age_seconds": 3650 * 86400,
    "flags.min_probe_age_seconds": 0,
    # no background resolution of the domain index: it would ask the system's resolver (off
    # the machine) about the names a test put in the index, and change them under the test
    "census.enabled": False,
}
record_id = records.record_id


class FakeFlow:
    """The control's step composer, faked at its seam: no network is measured."""

    addresses_ignored = 0

    async def measure(self, target: Any, probe: Any, **_: Any) -> Measurement:
        http = HTTPResult(target.url, None, 1.0, status=200, title="ok")
        return Measurement(new_id(), probe, target, "2026-03-01T20:00:00Z", 1.0, http=http)


def record(n: int, **fields: Any) -> dict[str, Any]:
    """Return record number ``n`` as a probe submits it (no probe id: the token says who)."""
    m = records.measurement(n, **fields)
    return dataclasses.replace(m, probe=dataclasses.replace(m.probe, id=None)).to_dict()


def schema_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator of ``schema`` (a part of the OpenAPI document: JSON Schema 2020-12) that
    resolves the document's components and checks formats."""
    root = {**schema, "components": openapi.document()["components"]}
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator(root, format_checker=checker)


def answer_validator(path: str, method: str, status: str) -> jsonschema.Draft202012Validator:
    """A validator of the JSON answer the document gives for (path, method, status)."""
    response = openapi.document()["paths"][path][method]["responses"][status]
    return schema_validator(response["content"]["application/json"]["schema"])


def batch(numbers: Iterable[int], **fields: Any) -> dict[str, Any]:
    return {"records": [record(n, **fields) for n in numbers]}


def count(db: Store, **filters: Any) -> int:
    return db.count_measurements(MeasurementQuery(**filters))


@dataclasses.dataclass
class Collector:
    """A running in-process collector: its HTTP client, its store and its app."""

    client: test_utils.TestClient[Any, Any]
    store: Store
    app: Any

    async def register(self, own_network: bool = True, **body: Any) -> tuple[str, str]:
        """Register a probe; return (probe_id, token). Every test client registers from
        127.0.0.1, one source network for the flags; ``own_network`` gives the probe a source
        of its own, as a probe on another machine would have."""
        async with self.client.post("/api/v1/probes", json=body) as r:
            assert r.status == 201, await r.text()
            answer = await r.json()
        if own_network:
            self.store.write(move_probe, answer["probe_id"], f"net:test-{answer['probe_id']}")
        return answer["probe_id"], answer["token"]

    async def submit(self, token: str, body: Any) -> tuple[int, Any]:
        """Submit a batch (a JSON value, or raw bytes); return (status, decoded answer)."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        kw = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with self.client.post("/api/v1/measurements", headers=headers, **kw) as r:
            return r.status, await r.json()

    async def query_all(self, **params: Any) -> list[dict[str, Any]]:
        """Every record the query API returns for ``params``, following the cursors."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page_params = {**params, **({"cursor": cursor} if cursor else {})}
            async with self.client.get("/api/v1/measurements", params=page_params) as r:
                assert r.status == 200, await r.text()
                page = await r.json()
            items += page["measurements"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


def move_probe(conn: sa.Connection, probe_id: str, source: str) -> None:
    """Set the source network a probe registered from (tests: every client is on loopback)."""
    conn.execute(sa.update(probes).where(probes.c.id == probe_id).values(source=source))


@contextlib.asynccontextmanager
async def running(
    db_url: str,
    store: Any = None,
    control: Any = None,
    judge_in_background: bool = True,
    address_vantage: Any = None,
    **overrides: Any,
) -> AsyncIterator[Collector]:
    """Run the collector app over ``db_url`` (or a given store) on loopback; without the
    background judge, only readers judge the pairs batches leave pending."""
    cfg = load_config(None, {**FAST, "database.url": db_url, **overrides})
    db = open_store(db_url)
    registry = prometheus_client.CollectorRegistry()
    app = build_app(
        cfg,
        store=store or db,
        registry=registry,
        control=control,
        judge_in_background=judge_in_background,
        address_vantage=address_vantage,
    )
    try:
        async with test_utils.TestServer(app) as server, test_utils.TestClient(server) as client:
            yield Collector(client, db, app)
    finally:
        db.close()


async def register(session: aiohttp.ClientSession, url: str, **body: Any) -> tuple[str, str]:
    async with session.post(f"{url}/api/v1/probes", json=body) as r:
        assert r.status == 201, await r.text()
        answer = await r.json()
    return answer["probe_id"], answer["token"]


async def submit(
    session: aiohttp.ClientSession, url: str, token: str, body: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{url}/api/v1/measurements", json=body, headers=headers) as r:
        return r.status, await r.json()
