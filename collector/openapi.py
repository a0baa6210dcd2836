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
from collector.pages import routes as pages
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
            "blocking flags per (network, service, resolver path, method)",
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


def _signatures() -> dict[str, Any]:
    """GET /api/v1/signatures (collector/learned_routes.py): its item, inline."""
    when = {"type": "string", "format": "date-time"}
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "network": {"type": ["string", "null"]},
            "asn": {"type": "integer"}, "resolver": {"type": "string"},
            "kind": {"type": "string", "enum": ["address", "rcode"]},
            "value": {"type": "string"}, "probes": {"type": "integer"},
            "controls": {"type": "integer"},
            "evidence": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            "first_seen": when, "last_seen": when,
        },
        "required": ["id", "network", "asn", "resolver", "kind", "value", "probes", "controls",
                     "evidence", "first_seen", "last_seen"],
    }  # fmt: skip
    from collector.learned_routes import (
        SIGNATURE_FILTERS,
    )  # here: it imports handlers, which import this

    return {
        "/api/v1/signatures": _get(
            "block signatures learned per network and resolver path from the positive controls",
            _ok(
                "the signatures in force (not retired), latest seen first",
                {
                    "type": "object",
                    "properties": {"signatures": {"type": "array", "items": item}},
                    "required": ["signatures"],
                },
            ),
            parameters=parameters(SIGNATURE_FILTERS),
            responses=_errors(
                _400="a parameter at fault, named", _503="the database is unavailable"
            ),
        )
    }


def _census_probes() -> dict[str, Any]:
    """The census's probe side: the addresses to sweep, and the sweeps in."""
    sweeps = _post(
        "submit sweeps (at most 10, of at most 1,000 entries): stored whole or not at all, "
        "idempotent by sweep id",
        "SweepBatch",
        ("200", _ok("committed (inserted + duplicates = accepted)", _ref("Stored"))),
        {
            **_errors(
                _400="malformed JSON, or a sweep and field at fault (named)",
                _401="missing, unknown or expired bearer token",
                _403="a sweep claims another probe",
                _413="body larger than limits.max_body_bytes",
                _429="too many submissions from this probe or address",
            ),
            **DB_DOWN,
        },
        security=[{"bearer": []}],
    )
    targets = _get(
        "the addresses probes sweep each cycle, highest priority first",
        _ok("the addresses, with an ETag", _ref("AddressTargets")),
        description="Computed in the background and cached for a few minutes: public "
        "addresses only, at most census.addresses_per_cycle. A request whose If-None-Match "
        "names the current ETag is answered 304 Not Modified, without a body.",
        responses=_errors(
            _429="too many requests from this address",
            _503="the database is unavailable (or the collector runs without one)",
        ),
    )
    return {"/api/v1/addresses": targets, "/api/v1/sweeps": sweeps}


def _census() -> dict[str, Any]:
    bad = _errors(_400="a parameter at fault, named", _503="the database is unavailable")
    ip = {
        "name": "ip",
        "in": "path",
        "required": True,
        "description": "an IPv4 or IPv6 address",
        "schema": {"type": "string"},
        "example": "203.0.113.7",
    }
    return {
        "/api/v1/census": _get(
            "what is blocked now, per network: addresses, collateral and intended domains",
            _ok("one item a network with an open address flag", _ref("Census")),
            parameters=parameters(filters.CENSUS_FILTERS),
            responses=bad,
        ),
        "/api/v1/census/addresses": _get(
            "the address flags, one item a (network, address), with the domains on each",
            _ok("most domains first", _ref("CensusAddresses")),
            parameters=parameters(filters.CENSUS_ADDRESS_FILTERS),
            responses=bad,
        ),
        "/api/v1/census/addresses/{ip}": _get(
            "one address: the domains seen on it, a page at a time, and its flags",
            _ok("the address", _ref("CensusAddressDetail")),
            parameters=[ip, *parameters(filters.DOMAIN_PAGING)],
            responses={**bad, **_errors(_404="an address the census does not know")},
        ),
        "/api/v1/census/history": _get(
            "the census over time, per network, in buckets of an hour or a day",
            _ok("one series a network", _ref("CensusHistory")),
            description="A bucket counts an address flag open at any time within it, and the "
            f"domains on that address then; at most {filters.MAX_BUCKETS} buckets. Without "
            f"until: now, or the end of the {filters.MAX_BUCKETS}th bucket from since when "
            "sooner; without since: 7 days of hours, or 90 days of days, before until.",
            parameters=parameters(filters.HISTORY_FILTERS),
            responses=bad,
        ),
    }


def _dashboard() -> dict[str, Any]:
    """The pages, the evidence package and the files ('self'-only CSP, versioned URLs)."""
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

    def path_id(param: str, description: str, pattern: str, example: str) -> dict[str, Any]:
        return {
            "name": param,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string", "pattern": pattern},
            "example": example,
        }

    flag_id = path_id("flag_id", "a flag's id", "^[0-9a-f]{32}$", "0" * 32)
    record_id = path_id(
        "record_id",
        "a record's id (a UUID)",
        "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        "00000000-0000-4000-8000-000000000000",
    )
    html = _ok("the page", text, "text/html")
    bad = _errors(_400="a parameter is unknown, repeated or malformed (named)")
    missing = _errors(
        _400="a parameter or the id is malformed (named)", _404="no such id", _503="no database"
    )
    return {
        "/": _get(
            "the dashboard: what is blocked now per network, and the services x networks matrix"
            " (HTML, French or English)",
            html,
            parameters=parameters(pages.OVERVIEW),
            responses=bad,
        ),
        "/timeline": _get(
            "blocked intervals over days, per network or per service (HTML)",
            html,
            parameters=parameters(pages.TIMELINE),
            responses=bad,
        ),
        "/collateral": _get(
            "each blocked address, the networks blocking it and what sits behind it (HTML)",
            html,
            parameters=parameters(pages.COLLATERAL),
            responses=bad,
        ),
        "/flags/{flag_id}": _get(
            "a flag's evidence page: its history and its records (HTML)",
            html,
            parameters=[flag_id, *parameters(pages.DETAIL)],
            responses=missing,
        ),
        "/measurements/{record_id}": _get(
            "a record's page: every step beside the control (HTML)",
            html,
            parameters=[record_id, *parameters(pages.DETAIL)],
            responses=missing,
        ),
        "/api/v1/flags/{flag_id}/evidence": _get(
            "the flag's evidence package: a zip of its records, control and history, signed "
            "(Ed25519) with the collector's key",
            _ok(
                "the zip",
                {"type": "string", "contentMediaType": "application/zip"},
                "application/zip",
            ),
            parameters=[flag_id],
            responses=missing,
        ),
        "/api/v1/evidence/key": _get(
            "the public key that signs evidence packages",
            _ok("the key", _ref("EvidenceKey")),
            responses=_errors(_400="a parameter was given (none is taken)", _503="no database"),
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
            **_signatures(),
            **_census_probes(),
            **_census(),
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
