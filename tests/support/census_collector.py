"""A small collector on loopback for the probe's census tests: the address list, the sweeps.

It serves GET /api/v1/addresses (a list the test sets, or 404 as an older collector answers)
and POST /api/v1/sweeps, checking every sweep document strictly against docs/spec.md
("Sweeps"): a divergence is a 400 and is kept in ``errors``, so a test fails on it. For the
daemon's tests it also takes registrations, records (POST /api/v1/measurements: kept by id,
not judged) and serves a watchlist, so that one `run --once` delivers both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from probe import failures
from probe.times import parse_rfc3339

TOKEN = "census-test-token"
PROBE_ID = "p-census-test"
DOC_KEYS = {"schema", "id", "probe", "started_at", "duration_ms", "entries"}
PROBE_KEYS = {"id", "software", "asn", "network", "cc"}
ENTRY_REQUIRED = {"ip", "port", "sni", "tcp", "ms"}


class Divergence(ValueError):
    """A sweep document that docs/spec.md does not allow."""


def _failure(value: Any, where: str) -> None:
    ok = value is None or value in failures.FAILURES
    ok = ok or (isinstance(value, str) and value.startswith(failures.UNKNOWN_PREFIX))
    if not ok:
        raise Divergence(f"{where}: {value!r} is neither null nor a failure string")


def check_entry(e: Any, where: str) -> None:
    """Check one entry: a step not run is absent, one run is null or a failure string."""
    if not isinstance(e, dict):
        raise Divergence(f"{where}: not an object")
    expected = set(ENTRY_REQUIRED)
    if e.get("tcp") is None:
        expected.add("tls")
        if e.get("tls") is not None:
            expected.add("tls_neutral")
    if set(e) != expected:
        raise Divergence(f"{where}: keys {sorted(e)}, expected {sorted(expected)}")
    if not isinstance(e["ip"], str) or not isinstance(e["sni"], str):
        raise Divergence(f"{where}: ip and sni must be strings")
    port = e["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise Divergence(f"{where}.port: {port!r}")
    ms = e["ms"]
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
        raise Divergence(f"{where}.ms: {ms!r}")
    for step in ("tcp", "tls", "tls_neutral"):
        if step in e:
            _failure(e[step], f"{where}.{step}")


def check_sweep(doc: Any, where: str) -> None:
    """Check one sweep document against docs/spec.md, raising Divergence naming the fault."""
    if not isinstance(doc, dict) or set(doc) != DOC_KEYS:
        raise Divergence(f"{where}: keys {sorted(doc) if isinstance(doc, dict) else doc!r}")
    if doc["schema"] != 1:
        raise Divergence(f"{where}.schema: {doc['schema']!r}")
    uuid.UUID(str(doc["id"]))
    probe = doc["probe"]
    if not isinstance(probe, dict) or set(probe) != PROBE_KEYS:
        raise Divergence(
            f"{where}.probe: keys {sorted(probe) if isinstance(probe, dict) else probe}"
        )
    if not str(probe["software"]).startswith("surblocage/"):
        raise Divergence(f"{where}.probe.software: {probe['software']!r}")
    if not doc["started_at"].endswith("Z"):
        raise Divergence(f"{where}.started_at: not UTC")
    parse_rfc3339(doc["started_at"])
    if isinstance(doc["duration_ms"], bool) or not isinstance(doc["duration_ms"], int):
        raise Divergence(f"{where}.duration_ms: {doc['duration_ms']!r}")
    entries = doc["entries"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= 1000:
        raise Divergence(f"{where}.entries: 1 to 1,000 entries, got {len(entries)}")
    for i, e in enumerate(entries):
        check_entry(e, f"{where}.entries[{i}]")


@dataclass
class CensusCollector:
    """What the collector serves and what it received; the test sets ``addresses``."""

    addresses: dict[str, Any] | None = field(default_factory=lambda: {"addresses": []})
    watchlist: dict[str, Any] = field(default_factory=lambda: {"services": []})
    sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, encoding
    errors: list[str] = field(default_factory=list)
    refuse_sweeps: int | None = None  # a status to answer every POST /api/v1/sweeps with
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log])
        app.router.add_get("/api/v1/addresses", self._addresses)
        app.router.add_post("/api/v1/sweeps", self._sweeps)
        app.router.add_post("/api/v1/measurements", self._records)
        app.router.add_post("/api/v1/probes", self._register)
        app.router.add_get("/api/v1/watchlist", self._watchlist)
        app.router.add_get("/healthz", self._health)
        return app

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        coding = request.headers.get("Content-Encoding", "")
        self.requests.append((request.method, request.path, coding))
        return await handler(request)

    async def _addresses(self, request: web.Request) -> web.Response:
        if self.addresses is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(self.addresses)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def _sweeps(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "token required"}, status=401)
        if self.refuse_sweeps is not None:
            return web.json_response({"error": "refused"}, status=self.refuse_sweeps)
        try:
            body = await request.json()
            if not isinstance(body, dict) or set(body) != {"sweeps"}:
                raise Divergence("body: expected {'sweeps': [...]}")
            docs = body["sweeps"]
            if not isinstance(docs, list) or not 1 <= len(docs) <= 10:
                raise Divergence("sweeps: 1 to 10 a request")
            for i, doc in enumerate(docs):
                check_sweep(doc, f"sweeps[{i}]")
        except (Divergence, ValueError, TypeError, KeyError) as e:
            self.errors.append(str(e))
            return web.json_response({"error": str(e)}, status=400)
        inserted = 0
        for doc in docs:
            inserted += doc["id"] not in self.sweeps
            self.sweeps[doc["id"]] = doc
        answer = {"accepted": len(docs), "inserted": inserted, "duplicates": len(docs) - inserted}
        return web.json_response(answer)

    async def _records(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "token required"}, status=401)
        records = (await request.json())["records"]
        inserted = 0
        for r in records:
            inserted += r["id"] not in self.records
            self.records[r["id"]] = r
        n = len(records)
        return web.json_response({"accepted": n, "inserted": inserted, "duplicates": n - inserted})

    async def _register(self, request: web.Request) -> web.Response:
        return web.json_response({"probe_id": PROBE_ID, "token": TOKEN}, status=201)

    async def _watchlist(self, request: web.Request) -> web.Response:
        return web.json_response(self.watchlist)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def entries(self) -> list[dict[str, Any]]:
        """Every entry received, in the order of the sweeps' documents as they came."""
        return [e for doc in self.sweeps.values() for e in doc["entries"]]


@contextlib.asynccontextmanager
async def serving(collector: CensusCollector, host: str = "127.0.0.1") -> Any:
    """Serve ``collector`` on ``host`` (a free port) in this event loop; set its ``url``."""
    runner = web.AppRunner(collector.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    collector.url = f"http://{host}:{runner.addresses[0][1]}"
    try:
        yield collector
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serving_in_thread(collector: CensusCollector) -> Iterator[CensusCollector]:
    """Serve ``collector`` from a thread of its own, for tests that run probe processes."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def main() -> None:
        async with serving(collector):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield collector
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
