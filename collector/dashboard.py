"""The dashboard's files and policy: GET /static/{name} (its script, style and icon), and the
headers every page carries (the pages themselves: collector/pages).

Contract: the files come from the package (collector/web), read once; no other origin is needed
(no CDN, no fonts: the pages work offline). Every answer carries a Content-Security-Policy of
'self' only, with Trusted Types required: the browser itself refuses markup built from strings
(innerHTML and the like), so data from volunteers' probes can only ever become text.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import pathlib

from aiohttp import web

from collector import handlers

CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
TEXT = frozenset({"text/javascript", "text/css", "image/svg+xml"})
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
# The pages name their files with their version (?v=...): a versioned file may be kept for a
# year, since a new version is a new URL; an unversioned request is revalidated.
PAGE_CACHE = "no-cache"
VERSIONED_CACHE = "public, max-age=31536000, immutable"


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file of the dashboard, with its content type and version (a hash of its bytes)."""

    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, hashlib.sha256(body).hexdigest()[:20])


@functools.cache
def assets() -> dict[str, Asset]:
    """Every servable file of collector/web, by name: the only names /static/ can answer."""
    root = importlib.resources.files("collector").joinpath("web")
    found = {}
    for entry in root.iterdir():
        content_type = CONTENT_TYPES.get(pathlib.PurePath(entry.name).suffix)
        if content_type is not None and entry.is_file():
            found[entry.name] = _asset(entry.read_bytes(), content_type)
    return found


def _answer(request: web.Request, asset: Asset, cache: str) -> web.Response:
    """Answer ``asset``, or 304 when the client holds this version already (RFC 9110 13.1.2)."""
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": asset.etag}
    held = request.headers.get("If-None-Match", "")
    if asset.etag in (tag.strip().removeprefix("W/") for tag in held.split(",")) or held == "*":
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if asset.content_type in TEXT else None
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset=charset, headers=headers
    )


async def get_static(request: web.Request) -> web.Response:
    """Serve one of the page's files by name; any other name (a path, ..) is a 404."""
    name = request.match_info["name"]
    asset = assets().get(name)
    if asset is None:
        raise handlers.Problem(404, f"/static/{name}: no such file")
    current = request.query.get("v") == asset.version
    return _answer(request, asset, VERSIONED_CACHE if current else PAGE_CACHE)
