"""HTTP in and out only: parse, call the control, store or judge, answer JSON (docs/spec.md)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import prometheus_client
from aiohttp import http_exceptions, web

from collector import (
    auth,
    bodies,
    export,
    export_ooni,
    flag_diagnostics,
    ingest,
    openapi,
    peers,
    sources,
)
from collector import control as control_mod
from collector.store import MeasurementQuery, ProbeSeen, StoreError, StoreUnavailable, filters
from collector.store.schema import MAX_ASN
from probe import logs
from probe.record import encode
from probe.times import rfc3339

STATE: web.AppKey[Any] = web.AppKey("state")
_JSON = msgspec.json.Encoder()
encode_json = _JSON.encode  # for the route modules beside this one (collector/census/reads.py)


def error(status: int, message: str) -> web.Response:
    """The one shape of an error answer: {"error": "..."} with a 4xx or 5xx status."""
    return web.json_response({"error": message}, status=status)


class Problem(Exception):
    """Bad input: answered as {"error": message} with a 4xx status by the app's middleware."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.close = close  # end the connection after the answer


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """Return the request's body, decoded from gzip or deflate, at most ``limit`` bytes decoded
    (default: limits.max_body_bytes) read within server.body_timeout_seconds; raise a Problem
    when it is not JSON or encoded otherwise (415), not the encoding it claims (400), past the
    limit (413) or too slow (408)."""
    config = request.app[STATE].config
    limit = config.max_body_bytes if limit is None else limit
    too_large = Problem(413, f"body: larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        bodies.check_headers(request.headers)
    except bodies.BodyError as e:
        raise Problem(e.status, e.message) from None
    chunks, size = [], 0
    try:
        async with asyncio.timeout(config.body_timeout_seconds):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        # a client dribbling its body would hold the connection for ever: answer, then close
        raise Problem(408, "body: not received in time", close=True) from None
    except (http_exceptions.ContentEncodingError, web.RequestPayloadError):
        coding = request.headers.get("Content-Encoding", "").strip().lower()
        raise Problem(400, f"body: not valid {coding}") from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int | None = None) -> Any:
    """Return the request's JSON body within the bounds of collector/bodies.py, or raise a
    Problem (400, 408, 413, 415) naming what is wrong."""
    raw = await read_body(request, limit)
    try:
        return bodies.decode_json(raw)
    except bodies.BodyError as e:
        raise Problem(e.status, e.message) from None


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 when the database answers with the expected schema, else 503 "degraded"."""
    state = request.app[STATE]
    if state.store is None:
        return web.json_response({"status": "ok", "database": "none"})
    try:
        await asyncio.to_thread(state.store.check_schema)
    except StoreError as e:
        # the reason goes to the log only: a driver message may name hosts and users
        logs.event("health check: database failing", logging.WARNING, reason=str(e))
        body = {"status": "degraded", "database": "unavailable", "error": "database unavailable"}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


async def post_control(request: web.Request) -> web.Response:
    """Measure targets from the collector's vantage, for a registered probe (or anyone, when
    control.public is set), within the per-caller and global rate limits."""
    state = request.app[STATE]
    if state.control is None:
        return error(404, "this collector runs no control vantage")
    if state.config.control_public:
        if not _source_allowed(request, state.control_caller_limiter):
            raise _rate_limited(state, "too many control requests from this address")
    else:
        await _authenticated(request, state.control_caller_limiter)
    if not state.control_limiter.allow("control"):
        raise _rate_limited(state, "the control is busy; try again later")
    body = await read_json(request, state.config.max_control_bytes)
    try:
        targets = control_mod.parse_request(
            body,
            state.config.control_max_targets,
            control_mod.watchlist_urls(state.watchlist),
            state.control.options.allow_networks,
        )
    except control_mod.ControlRequestError as e:
        return error(400, str(e))
    t0 = time.perf_counter()
    answer = await state.control.measure(targets)
    elapsed = time.perf_counter() - t0
    for c in answer.controls:
        state.metrics.observe_control(c.failure is None and c.http is not None, elapsed)
    state.metrics.control_addresses_ignored.inc(answer.addresses_ignored)
    controls = zip(targets, answer.controls, strict=True)
    return web.json_response(
        {"controls": [{"url": t.url, "control": encode(c)} for t, c in controls]}
    )


async def get_watchlist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.watchlist is None:
        return error(404, "this collector serves no watchlist (start it with --watchlist FILE)")
    return web.json_response(state.watchlist_doc)


async def get_flags(request: web.Request) -> web.Response:
    """Blocking flags per (network, service, method): reflects every batch acknowledged."""
    state = request.app[STATE]
    chosen = checked_params(request.query, filters.FLAG_FILTERS)
    await state.judged()
    with state.metrics.time_store("flags"):
        found = await store_call(state, functools.partial(state.findings.query_flags, **chosen))
        # what the probes' diagnostics found, over each flag's evidence (one read for all)
        found = await store_call(state, state.findings.store.read, flag_diagnostics.attach, found)
    return web.json_response({"flags": found})


async def get_collateral(request: web.Request) -> web.Response:
    """Addresses blocked at the address level, each with every watched service behind it."""
    state = request.app[STATE]
    chosen = checked_params(request.query, filters.COLLATERAL_FILTERS)
    await state.judged()
    found = await store_call(state, functools.partial(state.findings.query_collateral, **chosen))
    return web.json_response({"addresses": found})


async def get_whoami(request: web.Request) -> web.Response:
    """The network the collector will record for this caller: its ASN and network name.

    Answered from the ASN database for the caller's address; the address itself is neither
    echoed, stored nor logged.
    """
    state = request.app[STATE]
    if state.asn_db is None:
        return error(
            404,
            "this collector has no ASN database: declare the network in the "
            "probe's config (network.asn, network.name)",
        )
    found = state.lookup_network(_source(request))
    if found is None:
        return error(404, "the ASN database does not know this network")
    return web.json_response({"asn": found[0], "network": found[1]})


async def get_metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    # the flag gauges reflect every acknowledged batch; a failing database is not a reason to
    # withhold the metrics that say so
    with contextlib.suppress(Problem):
        await state.judged()
    body = prometheus_client.generate_latest(state.registry)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


def _source(request: web.Request) -> str:
    """The client's address (behind server.trusted_proxies, the one they name): used for one
    ASN lookup and a rate-limit key, never kept."""
    state = request.app[STATE]
    return peers.client_address(request.remote or "", request.headers, state.trusted_proxies)


def _source_allowed(request: web.Request, limiter: Any = None) -> bool:
    """Take one request from the client's budget in ``limiter`` (default: the per-address
    limit), counted by its address, or its /64 for IPv6."""
    limiter = limiter or request.app[STATE].source_limiter
    return bool(limiter.allow(peers.rate_key(_source(request))))


def _rate_limited(state: Any, message: str) -> Problem:
    state.metrics.reject("rate_limited")
    return Problem(429, message)


async def store_call(state: Any, fn: Any, *args: Any) -> Any:
    """Run a store method in a worker thread; a database failure is a 503, not a traceback."""
    try:
        return await asyncio.to_thread(fn, *args)
    except StoreUnavailable:
        state.metrics.reject("store_unavailable")
        raise Problem(503, "the database is unavailable; try again later") from None


async def post_probes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not _source_allowed(request):
        return error(429, "too many registrations from this address; try again later")
    limit = state.config.max_registration_bytes
    body = await read_json(request, limit) if request.can_read_body else {}
    if not isinstance(body, dict):
        return error(400, "body: expected an object")
    asn, network = body.get("asn"), body.get("network")
    if asn is not None and (isinstance(asn, bool) or not isinstance(asn, int) or asn <= 0):
        return error(400, "asn: expected a positive integer")
    if asn is not None and asn > MAX_ASN:
        return error(400, f"asn: expected a positive integer up to {MAX_ASN} (32 bits)")
    key = body.get("enrollment_key")
    if key is not None and not isinstance(key, str):
        return error(400, "enrollment_key: expected a string")
    if network is not None and (not isinstance(network, str) or not 0 < len(network) <= 64):
        return error(400, "network: expected a name of 1 to 64 characters")
    if not auth.enrollment_ok(state.config.enrollment_key, key):
        return error(403, "enrollment_key: missing or wrong; this collector is not open")
    probe_id, token = auth.new_probe_id(), auth.new_token()
    now = datetime.datetime.now(datetime.UTC)
    expires = now + datetime.timedelta(seconds=state.config.token_ttl_seconds)
    source = await _source_network(state, _source(request))
    await store_call(
        state,
        functools.partial(
            state.store.register_probe,
            *(probe_id, auth.hash_token(token), asn, network, now),
            token_expires_at=expires,
            source=source,
        ),
    )
    logs.event("probe registered", probe_id=probe_id)
    return web.json_response(_token_answer(probe_id, token, expires), status=201)


async def _source_network(state: Any, address: str) -> str | None:
    """The source network a probe registers from (collector/sources.py): what the flags count."""
    if state.source_key is None:
        state.source_key = await store_call(state, state.store.key, sources.KEY_NAME)
    cfg = state.config
    return sources.source_of(address, state.source_key, cfg.source_prefix_v4, cfg.source_prefix_v6)


def _token_answer(probe_id: str, token: str, expires: datetime.datetime) -> dict[str, str]:
    return {"probe_id": probe_id, "token": token, "expires_at": rfc3339(expires, "seconds")}


async def post_token(request: web.Request) -> web.Response:
    """Renew a probe's token: a new one for auth.token_ttl; the one given stays valid for
    auth.token_grace (never past its own expiry), for requests already on their way."""
    state = request.app[STATE]
    probe = await _authenticated(request)
    if request.match_info["probe_id"] != probe.id:
        return error(403, "probe_id: not the probe this token belongs to")
    given = auth.hash_token(auth.bearer_token(request.headers.get("Authorization")) or "")
    now = datetime.datetime.now(datetime.UTC)
    grace_end = now + datetime.timedelta(seconds=state.config.token_grace_seconds)
    given_expiry = min(probe.expires_at(given) or grace_end, grace_end)
    token = auth.new_token()
    expires = now + datetime.timedelta(seconds=state.config.token_ttl_seconds)
    renew = state.store.renew_token
    if not await store_call(
        state, renew, probe.id, given, auth.hash_token(token), expires, given_expiry
    ):
        return error(401, "Authorization: this token was replaced meanwhile")
    logs.event("probe token renewed", probe_id=probe.id)
    return web.json_response(_token_answer(probe.id, token, expires))


async def _authenticated(request: web.Request, limiter: Any = None) -> Any:
    """The probe whose token the request carries, within ``limiter`` (default: the probe's
    submission limit); raise a Problem (401, 429) otherwise."""
    state = request.app[STATE]
    token = auth.bearer_token(request.headers.get("Authorization"))
    if token is None:
        state.metrics.reject("auth")
        raise Problem(401, "Authorization: expected 'Bearer <token>' from POST /api/v1/probes")
    hashed = auth.hash_token(token)
    probe = await store_call(state, state.store.probe_by_token_hash, hashed)
    if probe is None:
        state.metrics.reject("auth")
        raise Problem(401, "Authorization: unknown token")
    if probe.revoked_at is not None:
        state.metrics.reject("auth")
        raise Problem(401, "Authorization: this probe was revoked by the collector's operator")
    expires = probe.expires_at(hashed)
    if expires is not None and expires <= datetime.datetime.now(datetime.UTC):
        state.metrics.reject("auth")
        raise Problem(
            401,
            f"Authorization: token expired at {rfc3339(expires, 'seconds')}; a probe renews "
            "it before (POST /api/v1/probes/{id}/token), or registers again",
        )
    if not (limiter or state.probe_limiter).allow(probe.id):
        raise _rate_limited(state, f"probe {probe.id}: too many requests; slow down")
    return probe


async def post_measurements(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not _source_allowed(request):
        raise _rate_limited(state, "too many requests from this address; try again later")
    probe = await _authenticated(request)
    logs.event("batch receiving", logging.DEBUG, probe_id=probe.id)
    try:
        raw = await read_body(request)
        looked_up = state.lookup_network(_source(request))  # the address is dropped after this
        rows = await state.prepare_batch(raw, probe, looked_up)
    except Problem as e:
        state.metrics.reject("too_large" if e.status == 413 else "malformed_json")
        raise
    except ingest.BatchError as e:
        state.metrics.reject(e.reason)
        return error(e.status, e.message)
    now = datetime.datetime.now(datetime.UTC)
    seen = ProbeSeen(probe.id, rows[0].asn, rows[0].network, now)
    with state.metrics.time_store("insert_batch"):
        outcome = await store_call(state, state.store.insert_batch, rows, seen)
    # which rows of a partly resubmitted batch were new is not known: count the first ones
    for row in rows[: outcome.inserted]:
        state.metrics.record_ingested(row.network, row.status, declared=row.declared_network)
    state.metrics.network_seen(rows[0].network, now.timestamp())
    logs.event(
        "batch stored",
        probe_id=probe.id,
        records=len(rows),
        inserted=outcome.inserted,
        duplicates=outcome.duplicates,
    )
    if state.judge is not None:
        state.judge.wake()  # flags are judged after the ack; readers judge what is left
    if state.learner is not None:
        state.learner.feed(rows)  # block signatures, learned after the ack as well
    return web.json_response(
        {"accepted": len(rows), "inserted": outcome.inserted, "duplicates": outcome.duplicates}
    )


# a page of measurements takes the filters (order among them) and the paging; the export takes
# its format and the filters only (it always runs from one end to the other)
QUERY_FILTERS = (*filters.MEASUREMENT_FILTERS, *filters.PAGING)
EXPORT_OTHERS = ("format",)


def checked_params(
    params: Any, known: Sequence[filters.Filter], others: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Return the values of the filters ``known`` given in query parameters (``others`` are
    known and left to the caller); raise Problem(400) naming the parameter at fault."""
    try:
        return filters.parse(params, known, others)
    except ValueError as e:
        raise Problem(400, str(e)) from None


def parse_query(
    params: Any, known: Sequence[filters.Filter] = QUERY_FILTERS, others: tuple[str, ...] = ()
) -> MeasurementQuery:
    """Turn query parameters into a MeasurementQuery, or raise Problem(400) naming the parameter."""
    try:
        return MeasurementQuery(**checked_params(params, known, others))
    except ValueError as e:
        raise Problem(400, str(e)) from None


async def get_measurements(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = parse_query(request.query)
    with state.metrics.time_store("query"):
        page = await store_call(state, state.store.query_measurements, q)
    # encoded by msgspec: a page is up to 1,000 documents, and json.dumps was a third of its cost
    body = _JSON.encode({"measurements": page.items, "next_cursor": page.next_cursor})
    return web.Response(body=body, content_type="application/json")


async def get_export(request: web.Request) -> web.StreamResponse:
    """Stream every matching record as JSON Lines, CSV or OONI measurements, chunk by chunk
    (constant memory); a HEAD gets the same status and headers, and nothing is read past them."""
    state = request.app[STATE]
    fmt = request.query.get("format", "jsonl")
    if fmt not in export.STREAMED_FORMATS:
        known = ", ".join(export.STREAMED_FORMATS)
        raise Problem(400, f"format: {fmt!r} is not one of {known} (Parquet: the export command)")
    q = parse_query(request.query, filters.MEASUREMENT_FILTERS, EXPORT_OTHERS)
    items = state.store.iter_measurements(q)
    # the first chunk before the headers: a database that does not answer is still a clean 503
    with state.metrics.time_store("export"):
        chunk = await store_call(state, _next_chunk, items)
    response = web.StreamResponse(
        headers={
            "Content-Type": export.CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="measurements.{export.FILE_NAMES[fmt]}"',
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    encoder = export.TextEncoder(fmt, shape=export_ooni.measurement)
    await response.write(encoder.header())
    while chunk:
        await response.write(encoder.encode(chunk))
        try:
            chunk = await asyncio.to_thread(_next_chunk, items)
        except StoreUnavailable as e:
            # the headers are gone: end the connection without the last chunk, so that the
            # client sees a truncated body rather than a complete-looking export
            logs.event("export cut: database failing", logging.WARNING, reason=str(e))
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


def _next_chunk(items: Any) -> list[Any]:
    return next(export.chunks(items), [])
