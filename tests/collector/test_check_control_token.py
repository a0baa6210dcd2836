"""`check` against a collector whose control serves registered probes only: with the state dir's
identity it sends the probe's token; without one it says so in one line and goes on."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from collector.control import ControlVantage
from probe.client import CollectorClient
from probe.daemon import identity
from probe.flow import FlowOptions
from tests.collector.harness import Collector, FakeFlow, running
from tests.test_probe_check_cli import ROOT, closed_udp_port


@pytest.fixture
async def collector(sqlite_url: str) -> AsyncIterator[Collector]:
    control = ControlVantage(FlowOptions(resolver="127.0.0.1"), flow=FakeFlow())  # type: ignore[arg-type]
    async with running(sqlite_url, control=control) as c:
        yield c


async def check(collector: Collector, state_dir: pathlib.Path) -> tuple[int, dict[str, Any], str]:
    """Run `check` on one domain (a dead resolver: quick); return status, record, stderr."""
    url = str(collector.client.make_url("/api/v1/control"))
    argv = [
        "check", "--json", "--quiet", "--timeout", "1", "--control", url,
        "--resolver", f"127.0.0.1:{closed_udp_port()}", "--state-dir", str(state_dir), "a.fr",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probe", *argv, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out), err.decode()


async def test_check_without_an_identity_says_the_control_needs_a_registered_probe(
    collector: Collector, tmp_path: pathlib.Path
) -> None:
    code, record, err = await check(collector, tmp_path / "state")
    assert code == 0, err
    [line] = err.strip().splitlines()
    assert "surblocage-probe register" in line and "without a control" in line
    assert "HTTP 401" in record["control"]["failure"]
    assert record["verdict"]["status"] == "inconclusive"


async def test_check_with_an_identity_sends_its_token_to_its_collectors_control(
    collector: Collector, tmp_path: pathlib.Path
) -> None:
    probe_id, token = await collector.register()
    base = str(collector.client.make_url("/"))
    identity.save_identity(tmp_path / "state", probe_id, token, base)
    code, record, err = await check(collector, tmp_path / "state")
    assert code == 0, err
    assert err == ""
    assert record["control"]["failure"] is None
    assert record["control"]["http"]["status"] == 200


async def test_a_daemon_refused_before_registering_asks_the_control_again_once_registered(
    collector: Collector,
) -> None:
    base = str(collector.client.make_url("/")).rstrip("/")
    async with CollectorClient(f"{base}/api/v1/control", base_url=base) as client:
        refused = await client.control("https://a.fr/", [])
        again = await client.control("https://a.fr/", [])  # not asked: refused for good
        _, token = await collector.register()
        client.use_token(token, base)
        served = await client.control("https://a.fr/", [])
    assert refused.failure is not None and "HTTP 401" in refused.failure
    assert again.failure is not None and "registered probes only" in again.failure
    assert served.failure is None and served.http is not None and served.http.status == 200


async def test_a_token_is_never_sent_to_another_collectors_control(
    collector: Collector,
) -> None:
    base = str(collector.client.make_url("/")).rstrip("/")
    async with CollectorClient(f"{base}/api/v1/control", base_url=base) as client:
        _, token = await collector.register()
        client.use_token(token, "https://elsewhere.example")
        refused = await client.control("https://a.fr/", [])
    assert refused.failure is not None and "HTTP 401" in refused.failure
