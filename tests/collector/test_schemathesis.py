"""schemathesis against the OpenAPI document: no answer is a 5xx, every answer is as documented.

The collector runs for real on loopback (SQLite, one stored batch, a registered probe whose token
every request carries); each operation gets a bounded, derandomized run of requests built from
the document, valid ones and invalid ones (the negative mode: wrong types, missing fields).
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import prometheus_client
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from collector import openapi
from collector.app import build_app
from collector.config import load_config
from collector.judge import open_store
from tests.collector.harness import FAST, batch

EXAMPLES = 50  # an operation, in each of the two modes
MIN_REQUESTS = 20  # an operation: fewer means the strategy could not build requests
SCHEMA = schemathesis.openapi.from_dict(openapi.document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
REQUESTS: collections.Counter[str] = collections.Counter()
CHECKS = [not_a_server_error, response_schema_conformance]


class Served:
    """The collector app served on loopback by an event loop in a thread of its own."""

    def __init__(self, db_url: str) -> None:
        cfg = load_config(None, {**FAST, "database.url": db_url})
        self.store = open_store(db_url)
        app = build_app(cfg, store=self.store, registry=prometheus_client.CollectorRegistry())
        self.runner = web.AppRunner(app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        port = self.run(self._start())
        self.url = f"http://127.0.0.1:{port}"

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    def close(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=60)
        self.loop.close()
        self.store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The served collector's URL, and the headers of a registered probe with a stored batch."""
    from collector import store as store_mod

    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis')}/collector.db"
    store_mod.migrate(url)
    server = Served(url)
    session = _session()
    answer = session.post(f"{server.url}/api/v1/probes", json={}, timeout=30).json()
    headers = {"Authorization": f"Bearer {answer['token']}"}
    stored = session.post(
        f"{server.url}/api/v1/measurements", json=batch([1, 2]), headers=headers, timeout=30
    )
    assert stored.status_code == 200, stored.text
    try:
        yield server.url, headers
    finally:
        session.close()
        server.close()
        print(f"\nschemathesis: {sum(REQUESTS.values())} requests: {json.dumps(REQUESTS)}")


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    return session


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_operation_never_fails_and_answers_as_documented(
    served: tuple[str, dict[str, str]], operation: Any
) -> None:
    url, headers = served
    session = _session()
    strategy = operation.as_strategy(
        generation_mode=schemathesis.GenerationMode.POSITIVE
    ) | operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

    @hypothesis.settings(
        max_examples=2 * EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def check(case: Any) -> None:
        sent = dict(headers)  # schemathesis adds its own to the mapping it is given
        response = case.call(base_url=url, session=session, headers=sent, timeout=30)
        REQUESTS[operation.label] += 1
        case.validate_response(response, checks=CHECKS, headers=sent)

    try:
        check()
    finally:
        session.close()
    assert REQUESTS[operation.label] >= (MIN_REQUESTS if _takes_input(operation) else 1)


def _takes_input(operation: Any) -> bool:
    """Whether the operation takes parameters or a body: else one request is all there is."""
    documented = openapi.document()["paths"][operation.path][operation.method.lower()]
    return bool(documented.get("parameters") or documented.get("requestBody"))
