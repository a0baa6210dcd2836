"""Cross-origin reads of the public GET API (CORS, the Fetch standard), for the origins allowed.

Contract (docs/security.md, "Cross-origin reads"): only GET and HEAD answers of the public read
routes (every GET route under /api/v1/ but ``PRIVATE``) carry Access-Control-Allow-Origin, for
an Origin in ``api.cors_origins`` (or any, with "*"), and a preflight (OPTIONS) is answered 204
only for such a route, an allowed origin and a GET or HEAD. POST routes never: probes are not
browsers, and no credential (token, cookie) is ever allowed across origins.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

PUBLIC_PREFIX = "/api/v1/"
# a read that answers about the caller, not the data: no other site's page may learn it
PRIVATE = frozenset({"/api/v1/whoami"})
READS = ("GET", "HEAD")
ALLOW_METHODS = "GET, HEAD"
# headers a page may add to a GET beyond the CORS-safelisted ones; never Authorization
ALLOW_HEADERS = "Accept, Accept-Language, Content-Language, If-None-Match"
MAX_AGE_SECONDS = 600


def public_path(canonical: str) -> bool:
    """Whether a route's path (its pattern) is one of the public reads."""
    return canonical.startswith(PUBLIC_PREFIX) and canonical not in PRIVATE


def public_read(request: web.Request) -> bool:
    """Whether the request is a GET or HEAD of a public read route."""
    route = request.match_info.route
    if request.method not in READS or route.method not in READS or route.resource is None:
        return False
    return public_path(route.resource.canonical)


async def preflight_of_public_read(request: web.Request) -> bool:
    """Whether an OPTIONS request is for a public read route that answers GET (the router
    matched none: OPTIONS is not one of its methods, so ask each resource for the path)."""
    for resource in request.app.router.resources():
        found, allowed = await resource.resolve(request)
        if found is None and "GET" in allowed:
            return public_path(resource.canonical)
    return False


class Cors:
    """The middleware for the allowed ``origins`` (empty: it adds nothing)."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origins) - {"*"}

    def allow(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin for ``origin``, or None when it is not allowed."""
        if origin is None:
            return None
        if self.any:
            return "*"
        return origin if origin in self.origins else None

    @web.middleware
    async def preflight(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Answer a preflight for a public read from an allowed origin; pass the rest on (an
        OPTIONS otherwise stays the 405 it was)."""
        allowed = self.allow(request.headers.get("Origin"))
        asked = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and allowed is not None and asked in READS:
            if await preflight_of_public_read(request):
                response = web.Response(status=204)
                response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
                self._mark(response, allowed)
                return response
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Mark a public read's answer (a streamed one too, an error too) just before its
        headers leave: the allowed origin, and Vary: Origin."""
        if (self.any or self.origins) and public_read(request):
            self._mark(response, self.allow(request.headers.get("Origin")))

    @staticmethod
    def _mark(response: web.StreamResponse, allowed: str | None) -> None:
        # the answer depends on Origin: a shared cache must not give one origin's to another
        response.headers.add("Vary", "Origin")
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
