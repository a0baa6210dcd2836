"""Collector processes: SIGKILL mid-ingest loses no acknowledged batch and half-stores none;
SIGTERM finishes the batch in flight; two processes share one database without loss."""

from __future__ import annotations

import asyncio
import json
import pathlib
import random
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from collector.store import MeasurementQuery, open_store
from tests.collector.harness import batch, record_id, register, submit
from tests.support.collector_process import CollectorProcess

SIZE = 10  # records a batch


def ids_of(numbers: list[int]) -> set[str]:
    return {record_id(n) for n in numbers}


async def stored_ids(session: aiohttp.ClientSession, url: str) -> list[str]:
    """Every stored record id, through the export route of a running collector."""
    async with session.get(f"{url}/api/v1/export") as r:
        assert r.status == 200
        return [json.loads(line)["id"] for line in (await r.text()).splitlines()]


async def send_until_killed(
    session: aiohttp.ClientSession, proc: CollectorProcess, token: str, batches: list[list[int]]
) -> set[int]:
    """Submit batches concurrently; SIGKILL the collector after 40 acknowledgements.

    Return the indexes of the batches acknowledged with 200."""
    acked: set[int] = set()
    killed = asyncio.Event()
    sem = asyncio.Semaphore(12)

    async def send(i: int) -> None:
        async with sem:
            if killed.is_set():
                return
            try:
                status, _ = await submit(session, proc.url, token, batch(batches[i]))
            except (TimeoutError, aiohttp.ClientError):
                return  # cut by the kill: neither acknowledged nor known
            assert status == 200
            acked.add(i)
            if len(acked) >= 40 and not killed.is_set():
                proc.proc.kill()  # SIGKILL while other batches are in flight
                killed.set()

    await asyncio.gather(*(send(i) for i in range(len(batches))))
    assert killed.is_set()
    return acked


@pytest.mark.timeout(300)
async def test_sigkill_mid_ingest_loses_no_acknowledged_batch(
    db_url: str, tmp_path: pathlib.Path
) -> None:
    batches = [list(range(i * SIZE, (i + 1) * SIZE)) for i in range(150)]
    first = CollectorProcess(db_url, tmp_path / "first.log")
    async with aiohttp.ClientSession() as session:
        _, token = await register(session, first.url)
        acked = await send_until_killed(session, first, token, batches)
        assert first.proc.wait(timeout=60) == -signal.SIGKILL
        second = CollectorProcess(db_url, tmp_path / "second.log")
        try:
            stored = await stored_ids(session, second.url)
            assert len(stored) == len(set(stored))
            for i, numbers in enumerate(batches):
                present = ids_of(numbers) & set(stored)
                assert present in (set(), ids_of(numbers)), f"batch {i} half-stored"
                if i in acked:
                    assert present == ids_of(numbers), f"acknowledged batch {i} lost"
            assert len(acked) < len(batches)  # the kill came mid-way
            # the probe resubmits what it could not get acknowledged: nothing is stored twice
            for i in sorted(set(range(len(batches))) - acked):
                status, _ = await submit(session, second.url, token, batch(batches[i]))
                assert status == 200
            stored = await stored_ids(session, second.url)
        finally:
            assert second.stop() == 0
    assert sorted(stored) == sorted(ids_of(list(range(150 * SIZE))))


async def slow_body(body: bytes, release: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body sent in two halves, the second once ``release`` is set."""
    yield body[: len(body) // 2]
    await release.wait()
    yield body[len(body) // 2 :]


@pytest.mark.timeout(300)
async def test_sigterm_finishes_the_batch_in_flight(
    sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    proc = CollectorProcess(sqlite_url, tmp_path / "stderr.log", "--log-level", "debug")
    release = asyncio.Event()
    body = json.dumps(batch(range(50))).encode()
    async with aiohttp.ClientSession() as session:
        _, token = await register(session, proc.url)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        url = f"{proc.url}/api/v1/measurements"

        async def post() -> tuple[int, Any]:
            async with session.post(url, data=slow_body(body, release), headers=headers) as r:
                return r.status, await r.json()

        task = asyncio.create_task(post())
        await asyncio.to_thread(proc.wait_for_log, "batch receiving")
        proc.send(signal.SIGTERM)
        await asyncio.to_thread(proc.wait_for_log, "stopping: finishing requests in flight")
        release.set()
        assert await task == (200, {"accepted": 50, "inserted": 50, "duplicates": 0})
    assert proc.proc.wait(timeout=60) == 0
    assert "stopped" in proc.log_text()
    with open_store(sqlite_url) as db:
        assert db.count_measurements(MeasurementQuery()) == 50


def shuffled_batches(numbers: list[int], seed: int, size: int = 50) -> list[list[int]]:
    mixed = random.Random(seed).sample(numbers, len(numbers))
    return [mixed[i : i + size] for i in range(0, len(mixed), size)]


@pytest.mark.timeout(300)
async def test_two_processes_share_one_database(db_url: str, tmp_path: pathlib.Path) -> None:
    """PostgreSQL, or one SQLite file whose writers take turns (collector.store.writer)."""
    a = CollectorProcess(db_url, tmp_path / "a.log")
    b = CollectorProcess(db_url, tmp_path / "b.log")
    plan = [
        (a, shuffled_batches(list(range(0, 1200)), 1)),
        (b, shuffled_batches(list(range(600, 1800)), 2)),
    ]
    totals = {"inserted": 0, "duplicates": 0, "retried": 0}
    try:
        async with aiohttp.ClientSession() as session:
            _, token = await register(session, a.url)
            sem = asyncio.Semaphore(16)

            async def send(proc: CollectorProcess, numbers: list[int]) -> None:
                async with sem:
                    for _ in range(10):  # a probe retries a 503 (the database was busy)
                        status, answer = await submit(session, proc.url, token, batch(numbers))
                        if status != 503:
                            break
                        totals["retried"] += 1
                    assert status == 200, answer
                    totals["inserted"] += answer["inserted"]
                    totals["duplicates"] += answer["duplicates"]

            await asyncio.gather(*(send(p, n) for p, work in plan for n in work))
            stored = await stored_ids(session, b.url)
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
    assert sorted(stored) == sorted(ids_of(list(range(1800))))
    assert totals["inserted"] == 1800
    assert totals["duplicates"] == 600
    if db_url.startswith("sqlite:///"):
        assert (tmp_path / "db" / "collector.db-writer").exists()  # they took turns on it
