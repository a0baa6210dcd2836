"""GET /api/v1/signatures: the block signatures learned per network and resolver path.

Public and read-only, like the flags: what each network's resolvers answer for names blocked by
order (collector/judge/learned.py). Retired signatures are not served.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from collector import handlers
from collector.store import StoreUnavailable, filters

RESOLVER = filters.Filter("resolver", filters.TEXT, "a resolver path's name", "system")
SIGNATURE_FILTERS = (filters.ASN_, filters.NETWORK, RESOLVER, filters.LIMIT)


async def get_signatures(request: web.Request) -> web.Response:
    """The signatures in force, latest seen first; reflects every batch this process
    acknowledged before the request."""
    state = request.app[handlers.STATE]
    chosen: dict[str, Any] = handlers.checked_params(request.query, SIGNATURE_FILTERS)
    learner = state.learner
    if learner is None:  # no store: nothing is learned
        return web.json_response({"signatures": []})
    try:
        found = await learner.read(**chosen)
    except StoreUnavailable:
        state.metrics.reject("store_unavailable")
        raise handlers.Problem(503, "the database is unavailable; try again later") from None
    return web.json_response({"signatures": found})
