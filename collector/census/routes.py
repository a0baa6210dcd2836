"""HTTP in and out of the census's probe side: GET /api/v1/addresses, POST /api/v1/sweeps.

Parse, call, answer (docs/spec.md, "Address targets" and "Sweeps"); the selection is
collector/census/targets.py's, the bounds and storage collector/census/sweeps.py's. The POST is
authenticated, limited and bounded as POST /api/v1/measurements is, by the same helpers.
"""

from __future__ import annotations

import datetime

from aiohttp import web

from collector import handlers, ingest
from collector.census import sweeps
from collector.handlers import STATE, Problem
from collector.store import StoreUnavailable


async def get_addresses(request: web.Request) -> web.Response:
    """The addresses probes should sweep, from the cache (ETag: If-None-Match answers 304)."""
    state = request.app[STATE]
    if not handlers._source_allowed(request):
        raise handlers._rate_limited(state, "too many requests from this address; try again later")
    if state.targets is None:
        return handlers.error(503, "this collector runs without a database: no addresses")
    try:
        body, etag = await state.targets.get()
    except StoreUnavailable:
        state.metrics.reject("store_unavailable")
        raise Problem(503, "the database is unavailable; try again later") from None
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in _tags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def _tags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",")} if header else set()


async def post_sweeps(request: web.Request) -> web.Response:
    """Store a probe's sweeps, pending the address judge; idempotent by sweep id."""
    state = request.app[STATE]
    if not handlers._source_allowed(request):
        raise handlers._rate_limited(state, "too many requests from this address; try again later")
    probe = await handlers._authenticated(request)
    try:
        body = await handlers.read_json(request)
    except Problem as e:
        state.metrics.reject("too_large" if e.status == 413 else "malformed_json")
        raise
    now = datetime.datetime.now(datetime.UTC)
    try:
        batch = sweeps.parse(body)
        looked_up = state.lookup_network(handlers._source(request))  # the address is dropped
        found = sweeps.rows(
            batch,
            probe,
            looked_up,
            now,
            datetime.timedelta(seconds=state.config.max_record_age_seconds),
            ingest.MAX_CLOCK_AHEAD,
        )
    except sweeps.SweepError as e:
        state.metrics.reject("auth" if e.status == 403 else "schema")
        return handlers.error(e.status, e.message)
    with state.metrics.time_store("insert_batch"):
        new = await handlers.store_call(state, state.store.write, sweeps.store, found)
    for r in found:
        if r.id in new:
            state.metrics.sweep_ingested(r.network, r.entries)
    if state.address_judge is not None and new:
        state.address_judge.wake()  # judged after the ack; readers judge what is left
    inserted = len(new)
    return web.json_response(
        {"accepted": len(found), "inserted": inserted, "duplicates": len(found) - inserted}
    )
