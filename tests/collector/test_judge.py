"""Flags judged after the ack, off the ingest path: by the background judge, or by the reader that
needs them, so that a read reflects every batch acknowledged before it, whichever process
acknowledged it."""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
import time
import uuid
from typing import Any

import aiohttp
import psycopg
import pytest
import sqlalchemy as sa

from collector import cli, handlers
from collector.judge import Findings, open_store
from tests.collector.harness import CollectorProcess, batch, register, running, submit
from tests.support.flags import look
from tests.support.flags import recent as findings_recent

OPENED = "surblocage_flags_opened_total"
# what every record of the harness shows: DNS answers 127.0.0.1 with EDE 16 "Censored", a
# signature of its own: one look opens the flag
FLAG = ("Orange", "mycanal", "dns", "open")


def recent() -> str:
    """A start time inside the judge's window (records of the last two days count)."""
    return (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).isoformat()


def shown(flags: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["network"], f["service"], f["method"], f["state"]) for f in flags]


async def get_json(session: Any, url: str) -> tuple[int, Any]:
    async with session.get(url) as r:
        return r.status, await r.json()


def nothing_pending(findings: Findings) -> bool:
    """Wait until no pair is pending; False if some still are after a while."""
    deadline = time.monotonic() + 30  # a liveness bound, not a timing assertion
    while findings.pending_count():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def test_a_read_judges_what_the_background_judge_has_not(db_url: str) -> None:
    async with running(db_url, judge_in_background=False) as c:
        _, token = await c.register(asn=3215, network="Orange")
        status, _ = await c.submit(token, batch(range(3), started_at=recent()))
        assert status == 200
        findings = Findings(c.store)
        assert findings.pending_count() == 1  # acknowledged, its pair not judged yet
        assert findings.query_flags() == []
        assert shown((await get_json(c.client, "/api/v1/flags"))[1]["flags"]) == [FLAG]
        assert findings.pending_count() == 0
        registry = c.app[handlers.STATE].registry
        assert registry.get_sample_value(OPENED, {"network": "Orange", "method": "dns"}) == 1


async def test_the_background_judge_judges_after_the_ack(db_url: str) -> None:
    async with running(db_url) as c:
        _, token = await c.register(asn=3215, network="Orange")
        assert (await c.submit(token, batch(range(3), started_at=recent())))[0] == 200
        findings = Findings(c.store)
        assert await asyncio.to_thread(nothing_pending, findings)
        assert shown(findings.query_flags()) == [FLAG]  # judged with no reader asking


def no_judge_role(url: str) -> str:
    """Return ``url`` as a new role that may ingest but not judge (no DELETE on pending_pairs):
    a collector connected as it acknowledges batches and leaves their pairs pending."""
    role = f"sb_nojudge_{uuid.uuid4().hex[:8]}"
    server = sa.engine.make_url(url)
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{role}"')
        admin.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    return server.set(username=role).render_as_string(hide_password=False)


def drop_role(url: str, role_url: str) -> None:
    role = sa.engine.make_url(role_url).username
    server = sa.engine.make_url(url)
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_a_batch_acked_by_one_process_is_in_the_flags_read_from_another(
    pg_url: str, tmp_path: pathlib.Path
) -> None:
    ingesting = no_judge_role(pg_url)
    a = CollectorProcess(ingesting, tmp_path / "a.log")
    b = CollectorProcess(pg_url, tmp_path / "b.log")
    try:
        async with aiohttp.ClientSession() as session:
            _, token = await register(session, a.url, asn=3215, network="Orange")
            status, _ = await submit(session, a.url, token, batch(range(3), started_at=recent()))
            assert status == 200
            # a tried to judge and could not: the pair is still pending when b is asked
            await asyncio.to_thread(a.wait_for_log, "judging flags failed")
            status, body = await get_json(session, f"{b.url}/api/v1/flags")
            assert status == 200
            assert shown(body["flags"]) == [FLAG]
            # nothing is pending any more: a answers too, with what b judged
            assert shown((await get_json(session, f"{a.url}/api/v1/flags"))[1]["flags"]) == [FLAG]
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
        drop_role(pg_url, ingesting)


async def test_the_metrics_reflect_a_batch_the_background_judge_has_not_judged(
    db_url: str,
) -> None:
    async with running(db_url, judge_in_background=False) as c:
        _, token = await c.register(asn=3215, network="Orange")
        assert (await c.submit(token, batch(range(2), started_at=recent())))[0] == 200
        async with c.client.get("/metrics") as r:
            text = await r.text()
    series = 'surblocage_flags_open{category="iptv_legal",method="dns",network="Orange",'
    assert f'{series}service="mycanal"}} 1.0' in text


def test_an_export_of_flags_judges_what_is_pending_first(
    sqlite_url: str, tmp_path: pathlib.Path
) -> None:
    with open_store(sqlite_url) as db:  # stored and acknowledged, never judged
        db.insert_batch([look("p1", findings_recent(0), blockpage="fr")])
        assert Findings(db).pending_count() == 1
    out = tmp_path / "flags.jsonl"
    assert cli.main(["export", "--what", "flags", "--db", sqlite_url, "-o", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert shown(exported) == [FLAG]
