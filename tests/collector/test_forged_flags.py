"""Forged evidence does not open or keep a flag: dates out of range, puppets, revoked probes."""

from __future__ import annotations

import datetime

from tests.collector.harness import batch, count, running

UTC = datetime.UTC
WEEK = {"ingest.max_record_age_seconds": 7 * 86400}


async def test_a_record_from_the_future_is_refused_naming_it(sqlite_url: str) -> None:
    async with running(sqlite_url, **WEEK) as c:
        _, token = await c.register()
        soon = datetime.datetime.now(UTC) + datetime.timedelta(minutes=2)
        later = datetime.datetime(2099, 1, 1, tzinfo=UTC)
        body = {
            "records": batch([1], started_at=soon)["records"]
            + batch([2], started_at=later)["records"]
        }
        status, answer = await c.submit(token, body)
        assert status == 400
        assert answer["error"].startswith("records[1].started_at: ")
        assert "future" in answer["error"]
        assert count(c.store) == 0


async def test_a_record_older_than_the_retention_window_is_refused(sqlite_url: str) -> None:
    async with running(sqlite_url, **WEEK) as c:
        _, token = await c.register()
        old = datetime.datetime.now(UTC) - datetime.timedelta(days=8)
        status, answer = await c.submit(token, batch([1], started_at=old))
        assert status == 400
        assert answer["error"].startswith("records[0].started_at: ")
        assert "older than" in answer["error"]
        fresh = datetime.datetime.now(UTC) - datetime.timedelta(days=6)
        status, answer = await c.submit(token, batch([2], started_at=fresh))
        assert status == 200, answer
        assert count(c.store) == 1
