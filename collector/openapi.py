"""The OpenAPI 3.1 document of the collector's HTTP API, served at GET /api/v1/openapi.json.

Contract: every route the app serves is here and nothing else; the paths and their operations
are written here, the schemas come from the types of collector/answers.py (JSON Schema 2020-12,
by msgspec) and the query parameters from collector/store/filters.py. Tests check the routes,
the parameters and the answers against the running app, and validate the document.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from collector import answers, export
from collector.store import filters
from probe import __version__

JSON = "application/json"
EXAMPLE_CURSOR = filters.EXAMPLE_CURSOR
_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _content(schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"description": description, **_content(schema, media)}


def _errors(**codes: str) -> dict[str, Any]:
    """Responses in the one error shape, {"error": "..."}, keyed by status code (``_400=``)."""
    return {code[1:]: _ok(why, _ref("Error")) for code, why in codes.items()}


def _schema(f: filters.Filter) -> dict[str, Any]:
    """The JSON Schema of a filter's value in a query string."""
    if f.kind == filters.TIME:  # RFC 3339, or a date alone: that day at 00:00 UTC
        return {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}
    if f.kind in (filters.ASN, filters.COUNT):
        low, high = f.bounds or (0, 2**32 - 1)
        return {"type": "integer", "minimum": low, "maximum": high}
    return {"type": "string", **({"enum": list(f.choices)} if f.choices else {})}


def parameters(chosen: Sequence[filters.Filter]) -> list[dict[str, Any]]:
    """The query parameters of a filter set, as an operation lists them."""
    return [
        {
            "name": f.name,
            "in": "query",
            "required": False,
            "description": f.help,
            "schema": _schema(f),
            "example": f.example,
        }
        for f in chosen
    ]


EXPORT_FORMAT = {
    "name": "format",
    "in": "query",
    "required": False,
    "description": "JSON Lines (default), CSV, or ooni: one OONI web_connectivity measurement a "
    "line (docs/spec.md, The OONI export)",
    "schema": {"type": "string", "enum": list(export.STREAMED_FORMATS)},
    "example": "csv",
}
BAD_QUERY = _errors(_400="a query parameter is unknown, repeated or malformed (it is named)")
DB_DOWN = _errors(_503="the database does not answer; retry later")


def _get(summary: str, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A GET operation: its summary, its 200 answer, and the rest (parameters, more answers)."""
    responses = {"200": answer, **extra.pop("responses", {})}
    return {"get": {"summary": summary, **extra, "responses": responses}}


def _health() -> dict[str, Any]:
    health = _ref("Health")
    return _get(
        "liveness, and whether the database answers",
        _ok("the collector and its database answer", health),
        responses={"503": _ok("degraded: the database does not answer", health)},
    )


def _post(
    summary: str,
    body: str,
    answer: tuple[str, dict[str, Any]],
    errors: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A POST operation: its summary, its body's schema, its answer (status, response), the
    errors; ``required=False`` for an optional body, and the rest (security)."""
    required = extra.pop("required", True)
    return {
        "post": {
            "summary": summary,
            **extra,
            "requestBody": {"required": required, **_content(_ref(body))},
            "responses": {answer[0]: answer[1], **errors, **UNSUPPORTED_BODY},
        }
    }


# every POST takes JSON only (collector/bodies.py), plain or in gzip or deflate
UNSUPPORTED_BODY = _errors(_415="a body that is not application/json, or another Content-Encoding")


def _probes() -> dict[str, Any]:
    errors = _errors(
        _400="malformed JSON or a bad field (named)",
        _403="enrollment_key missing or wrong",
        _413="body larger than limits.max_registration_bytes",
        _429="too many registrations from this address (an IPv6 address: its /64)",
    )
    return _post(
        "register a probe (open, or gated by the configured enrollment key)",
        "Registration",
        ("201", _ok("registered", _ref("Registered"))),
        {**errors, **DB_DOWN},
        required=False,
    )


def _token() -> dict[str, Any]:
    errors = _errors(
        _401="missing, unknown or expired bearer token",
        _403="the token is another probe's",
        _429="too many requests from this probe",
    )
    probe_id = {
        "name": "probe_id",
        "in": "path",
        "required": True,
        "description": "the probe whose token is renewed (the bearer token's own)",
        "schema": {"type": "string"},
    }
    return {
        "post": {
            "summary": "renew the probe's token before it expires: a new token; the one given "
            "stays valid for auth.token_grace, never past its own expiry",
            "parameters": [probe_id],
            "security": [{"bearer": []}],
            "responses": {"200": _ok("renewed", _ref("Renewed")), **errors, **DB_DOWN},
        }
    }


def _measurements() -> dict[str, Any]:
    errors = _errors(
        _400="malformed JSON, or a record and field at fault (named)",
        _401="missing, unknown or expired bearer token",
        _403="a record claims another probe",
        _413="body or batch larger than the limits",
        _429="too many submissions from this probe or address",
    )
    submit = _post(
        "submit a batch of records: stored whole or not at all, idempotent by id",
        "Batch",
        ("200", _ok("committed (inserted + duplicates = accepted)", _ref("Stored"))),
        {**errors, **DB_DOWN},
        security=[{"bearer": []}],
    )
    query = _get(
        "stored records in (started_at, id) order (order=desc: the reverse), a page at a time",
        _ok("one page", _ref("MeasurementPage")),
        parameters=parameters((*filters.MEASUREMENT_FILTERS, *filters.PAGING)),
        responses={**BAD_QUERY, **DB_DOWN},
    )
    return {**submit, **query}


def _export() -> dict[str, Any]:
    streamed = {
        "description": "the records, in (started_at, id) order",
        "content": {
            "application/x-ndjson": {
                "schema": {
                    "type": "string",
                    "description": "one StoredMeasurement a line (format=jsonl), or one OONI "
                    "web_connectivity measurement a line (format=ooni)",
                }
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": f"CSV with the columns {', '.join(export.CSV_COLUMNS)}",
                }
            },
        },
    }
    return _get(
        "every matching record, streamed (chunked) as JSON Lines, CSV or OONI measurements",
        streamed,
        parameters=[EXPORT_FORMAT, *parameters(filters.MEASUREMENT_FILTERS)],
        responses={**BAD_QUERY, **DB_DOWN},
    )


def _control() -> dict[str, Any]:
    return _post(
        "measure URLs from the collector's vantage (the control)",
        "ControlRequest",
        ("200", _ok("one control a target, in order", _ref("Controls"))),
        _errors(
            _400="malformed JSON or a bad target (named)",
            _401="missing, unknown or expired bearer token (unless control.public)",
            _404="this collector runs no control vantage",
            _413="body larger than limits.max_control_bytes",
            _429="too many control requests from this probe, or in all",
        ),
        security=[{"bearer": []}],
    )


def _findings() -> dict[str, Any]:
    unavailable = _errors(_400="a parameter at fault, named", _503="the database is unavailable")
    return {
        "/api/v1/flags": _get(
            "blocking flags per (network, service, method)",
            _ok("the flags, latest seen first", _ref("Flags")),
            description="Reflects every batch acknowledged before the request. A flag opens on "
            "agreeing blocked verdicts of a network's probes while the control reaches the "
            "service, and closes when they reach it again.",
            parameters=parameters(filters.FLAG_FILTERS),
            responses=unavailable,
        ),
        "/api/v1/collateral": _get(
            "addresses blocked at the address level, every service behind each",
            _ok("one row an address a network", _ref("CollateralAddresses")),
            parameters=parameters(filters.COLLATERAL_FILTERS),
            responses=unavailable,
        ),
    }


def _dashboard() -> dict[str, Any]:
    """The page and its files: 'self'-only CSP, ETag (If-None-Match: 304), versioned URLs."""
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "a file of the page, as the page names it (?v=<version> makes it cacheable)",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
        "example": "app.js",
    }
    text = {"type": "string"}
    files = {media: {"schema": text} for media in ("text/javascript", "text/css", "image/svg+xml")}
    return {
        "/": _get(
            "the dashboard: open flags, collateral, latest measurements (HTML)",
            _ok("the page", text, "text/html"),
        ),
        "/static/{name}": _get(
            "the dashboard's script, style sheet and icon",
            {"description": "the file", "content": files},
            parameters=[name],
            responses=_errors(_404="no such file (only the page's own files are served)"),
        ),
    }


def _others() -> dict[str, Any]:
    return {
        "/api/v1/watchlist": _get(
            "the watchlist probes measure (docs/spec.md format)",
            _ok("the watchlist", _ref("Watchlist")),
            responses=_errors(_404="this collector serves no watchlist"),
        ),
        "/api/v1/whoami": _get(
            "the network the collector records for the caller (ASN database)",
            _ok("the caller's network", _ref("Whoami")),
            description="The caller's address is looked up, then dropped: it is never echoed, "
            "stored or logged.",
            responses=_errors(_404="no ASN database, or an address it does not know"),
        ),
        "/api/v1/openapi.json": _get("this document", _ok("OpenAPI 3.1", {"type": "object"})),
        "/metrics": _get(
            "Prometheus metrics", _ok("text exposition format", {"type": "string"}, "text/plain")
        ),
    }


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Surblocage collector",
            "version": __version__,
            "description": "Every GET route also answers HEAD: the same status and headers, "
            "no body. The public GET routes under /api/v1/ (not whoami) answer cross-origin "
            "reads from the origins of api.cors_origins (CORS).",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": {
            "/healthz": _health(),
            "/api/v1/probes": _probes(),
            "/api/v1/probes/{probe_id}/token": _token(),
            "/api/v1/measurements": _measurements(),
            "/api/v1/export": _export(),
            "/api/v1/control": _control(),
            **_findings(),
            **_others(),
            **_dashboard(),
        },
        "components": {
            "schemas": answers.schemas(_REF),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route (built once; the caller may not change
    it)."""
    return _document()
