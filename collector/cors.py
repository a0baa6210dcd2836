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


def public_read(request: web.Request) -> bool:
    """Whether the route matched serves public data to GET."""
    route = request.match_info.route
    canonical = route.resource.canonical if route.resource is not None else ""
    if not canonical.startswith(PUBLIC_PREFIX) or canonical in PRIVATE:
        return False
    if route.method in READS:
        return True
    allowed: set[str] = getattr(request.match_info.http_exception, "allowed_methods", set())
    return "GET" in allowed  # another method on a GET route (the preflight's OPTIONS)


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
        if request.method == "OPTIONS" and public_read(request):
            allowed = self.allow(request.headers.get("Origin"))
            if (
                allowed is not None
                and request.headers.get("Access-Control-Request-Method") in READS
            ):
                response = web.Response(status=204)
                response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
                response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
                return response  # marked by on_prepare, as every answer
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Mark a public read's answer (a streamed one too, an error too) just before its
        headers leave: the allowed origin, and Vary: Origin."""
        if not (self.any or self.origins) or not public_read(request):
            return
        preflight = request.method == "OPTIONS" and response.status == 204
        if request.method not in READS and not preflight:
            return
        # the answer depends on Origin: a shared cache must not give one origin's to another
        response.headers.add("Vary", "Origin")
        allowed = self.allow(request.headers.get("Origin"))
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
