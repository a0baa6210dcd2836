"""HTTP in and out only: parse, call the control, store or analysis, answer JSON (SPEC.md API)."""

from __future__ import annotations

import json
import time
from typing import Any

import prometheus_client
from aiohttp import web

from collector import control as control_mod
from probe.record import encode

STATE: web.AppKey[Any] = web.AppKey("state")


def error(status: int, message: str) -> web.Response:
    """The one shape of an error answer: {"error": "..."} with a 4xx or 5xx status."""
    return web.json_response({"error": message}, status=status)


class Problem(Exception):
    """Bad input: answered as {"error": message} with a 4xx status by the app's middleware."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def read_json(request: web.Request) -> Any:
    """Return the request's JSON body, or raise a Problem (400, 413) naming what is wrong."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[STATE].config.max_body_bytes
        raise Problem(413, f"body: larger than the limit of {limit} bytes") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Problem(400, f"body: not valid JSON ({e})") from None


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def post_control(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.control is None:
        return error(404, "this collector runs no control vantage")
    body = await read_json(request)
    try:
        targets = control_mod.parse_request(body, state.config.control_max_targets)
    except control_mod.ControlRequestError as e:
        return error(400, str(e))
    t0 = time.perf_counter()
    controls = await state.control.measure(targets)
    elapsed = time.perf_counter() - t0
    for c in controls:
        state.metrics.observe_control(c.failure is None and c.http is not None, elapsed)
    return web.json_response(
        {
            "controls": [
                {"url": t.url, "control": encode(c)} for t, c in zip(targets, controls, strict=True)
            ]
        }
    )


async def get_watchlist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.watchlist is None:
        return error(404, "this collector serves no watchlist (start it with --watchlist FILE)")
    return web.json_response(state.watchlist_doc)


async def get_metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = prometheus_client.generate_latest(state.registry)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})
