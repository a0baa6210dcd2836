"""Token expiry and renewal on a real collector app: an expired token is a 401 that says so; a
renewed token replaces the old one, which stays valid for the grace only."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from probe.times import parse_rfc3339
from tests.collector.harness import Collector, batch, running


async def renew(c: Collector, probe_id: str, token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with c.client.post(f"/api/v1/probes/{probe_id}/token", headers=headers) as r:
        return r.status, await r.json()


async def test_registration_says_when_the_token_expires(sqlite_url: str) -> None:
    async with running(sqlite_url, **{"auth.token_ttl": 3600}) as c:
        async with c.client.post("/api/v1/probes", json={}) as r:
            answer = await r.json()
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert abs(parse_rfc3339(answer["expires_at"]) - expected) < datetime.timedelta(minutes=1)


async def test_an_expired_token_is_refused_with_a_clear_error(sqlite_url: str) -> None:
    async with running(sqlite_url, **{"auth.token_ttl": 0.05}) as c:
        probe_id, token = await c.register()
        await asyncio.sleep(0.1)
        status, answer = await c.submit(token, batch([1]))
        renewed, _ = await renew(c, probe_id, token)
    assert status == 401
    assert answer["error"].startswith("Authorization: token expired at ")
    assert renewed == 401  # too late to renew: register again


async def test_a_renewed_token_works_and_the_old_one_only_for_the_grace(sqlite_url: str) -> None:
    async with running(sqlite_url, **{"auth.token_grace": 0.05}) as c:
        probe_id, old = await c.register()
        status, answer = await renew(c, probe_id, old)
        assert status == 200
        assert answer["probe_id"] == probe_id and answer["token"] != old
        new = answer["token"]
        assert (await c.submit(old, batch([1])))[0] == 200  # within the grace
        await asyncio.sleep(0.1)
        status, refused = await c.submit(old, batch([2]))
        assert status == 401 and "expired" in refused["error"]
        assert (await c.submit(new, batch([3])))[0] == 200
        # the new token renews in turn; the one before it is forgotten
        assert (await renew(c, probe_id, new))[0] == 200
        assert (await c.submit(old, batch([4])))[0] == 401


async def test_a_token_renews_only_its_own_probe(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        _, token = await c.register()
        other, _ = await c.register()
        status, answer = await renew(c, other, token)
    assert status == 403
    assert answer == {"error": "probe_id: not the probe this token belongs to"}
