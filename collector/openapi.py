"""The OpenAPI 3 document of the collector's HTTP API, served at GET /api/v1/openapi.json.

Contract: every route the app serves is here and nothing else; tests/collector/test_openapi.py
checks the paths, the query parameters and the response codes against the running routes.
"""

from __future__ import annotations

from typing import Any

from probe import __version__
from probe.record import CATEGORIES, METHODS, STATUSES

JSON = "application/json"
# a cursor as the API gives them out: base64url of ["<started_at>", "<id>"]
EXAMPLE_CURSOR = (
    "WyIyMDI2LTAzLTAxVDIwOjAwOjAwKzAwOjAwIiwiMDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAwIl0"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"description": description, **_content(schema, media)}


def _errors(**codes: str) -> dict[str, Any]:
    """Responses in the one error shape, {"error": "..."}, keyed by status code."""
    error = _content(_ref("Error"))
    return {code[1:]: {"description": why, **error} for code, why in codes.items()}


def _param(name: str, description: str, schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "example": example,
    }


def _string(example: str, description: str, name: str) -> dict[str, Any]:
    return _param(name, description, {"type": "string"}, example)


FILTERS = [
    _string("mycanal", "watchlist id of the service", "service"),
    _string("www.canalplus.com", "domain measured", "domain"),
    _param("asn", "AS number of the probe's network", {"type": "integer", "minimum": 0}, 3215),
    _string("Orange", "name of the probe's network", "network"),
    _param("status", "the collector's verdict", {"type": "string", "enum": list(STATUSES)}, "ok"),
    _param("method", "where blocking happens", {"type": "string", "enum": list(METHODS)}, "dns"),
    _string("p-0123456789abcdef0123", "the probe that measured", "probe_id"),
    _param(
        "since",
        "started at or after (RFC 3339 with a zone)",
        {"type": "string", "format": "date-time"},
        "2026-03-01T00:00:00Z",
    ),
    _param(
        "until",
        "started before (RFC 3339 with a zone)",
        {"type": "string", "format": "date-time"},
        "2026-04-01T00:00:00Z",
    ),
]
_BY_NAME = {p["name"]: p for p in FILTERS}
FLAG_FILTERS = [
    _BY_NAME["asn"], _BY_NAME["network"], _BY_NAME["service"],
    _param("category", "the service's category", {"type": "string", "enum": list(CATEGORIES)},
           "iptv_legal"),
    _BY_NAME["method"],
    _param("state", "open or closed", {"type": "string", "enum": ["open", "closed"]}, "open"),
    _param("since", "in force at or after (RFC 3339 with a zone)",
           {"type": "string", "format": "date-time"}, "2026-03-01T00:00:00Z"),
    _param("until", "first seen before (RFC 3339 with a zone)",
           {"type": "string", "format": "date-time"}, "2026-04-01T00:00:00Z"),
]  # fmt: skip
COLLATERAL_FILTERS = [_BY_NAME["asn"], _BY_NAME["network"]]
PAGING = [
    _param("limit", "records a page", {"type": "integer", "minimum": 1, "maximum": 1000}, 100),
    _param("cursor", "next_cursor of the previous page", {"type": "string"}, EXAMPLE_CURSOR),
]
EXPORT_FORMAT = _param(
    "format", "JSON Lines (default) or CSV", {"type": "string", "enum": ["jsonl", "csv"]}, "csv"
)
WATCHLIST = {
    "type": "object",
    "required": ["services"],
    "properties": {"services": {"type": "array"}},
}
BAD_QUERY = _errors(_400="a query parameter is unknown, repeated or malformed (it is named)")
DB_DOWN = _errors(_503="the database does not answer; retry later")


def _obj(required: list[str], props: dict[str, Any], extra: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": extra,
    }


STR, INT, NULLSTR = {"type": "string"}, {"type": "integer"}, {"type": ["string", "null"]}
TIME = {**STR, "format": "date-time"}
SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error"], {"error": {**STR, "description": "what is wrong"}}, False),
    "Flag": _obj(
        [
            "asn",
            "network",
            "service",
            "method",
            "state",
            "first_seen",
            "last_seen",
            "probes",
            "confidence",
            "evidence",
        ],
        {
            "asn": {"type": ["integer", "null"]},
            "network": NULLSTR,
            "service": STR,
            "category": STR,
            "method": {"enum": list(METHODS)},
            "state": {"enum": ["open", "closed"]},
            "first_seen": TIME,
            "last_seen": TIME,
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "probes": {"type": "array", "items": STR},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "evidence": {"type": "array", "items": STR, "description": "record ids"},
        },
    ),
    "Collateral": _obj(
        ["ip", "asn", "network", "services", "first_seen", "last_seen"],
        {
            "ip": STR,
            "asn": {"type": ["integer", "null"]},
            "network": NULLSTR,
            "services": {"type": "array", "items": STR},
            "first_seen": TIME,
            "last_seen": TIME,
        },
    ),
    "Verdict": _obj(
        ["status"],
        {
            "status": {"type": "string", "enum": list(STATUSES)},
            "method": {"type": ["string", "null"], "enum": [*METHODS, None]},
            "detail": NULLSTR,
            "blockpage": NULLSTR,
        },
    ),
    "Measurement": _obj(
        ["schema", "id", "probe", "target", "started_at", "duration_ms"],
        {
            "schema": {"type": "integer", "enum": [1]},
            "id": {**STR, "format": "uuid", "description": "made by the probe: idempotency key"},
            "probe": {"type": "object"},
            "target": _obj(
                ["service", "url", "domain", "category"],
                {"service": STR, "url": STR, "domain": STR, "category": {"enum": list(CATEGORIES)}},
            ),
            "started_at": {**STR, "format": "date-time"},
            "duration_ms": {"type": "number", "minimum": 0},
            "dns": {"type": "array"},
            "tcp": {"type": "array"},
            "tls": {"type": "array"},
            "http": {"type": ["object", "null"]},
            "control": {"type": ["object", "null"]},
            "verdict": {"oneOf": [_ref("Verdict"), {"type": "null"}]},
        },
    ),
    "StoredMeasurement": {
        "description": "a record as stored: the collector's verdict, the probe's beside it",
        "allOf": [
            _ref("Measurement"),
            _obj(
                ["received_at", "probe_verdict"],
                {
                    "received_at": {**STR, "format": "date-time"},
                    "probe_verdict": {"oneOf": [_ref("Verdict"), {"type": "null"}]},
                },
            ),
        ],
    },
}


def _health() -> dict[str, Any]:
    health = _obj(["status", "database"], {"status": STR, "database": STR})
    return {
        "summary": "liveness, and whether the database answers",
        "responses": {
            "200": _ok("the collector and its database answer", health),
            "503": _ok("degraded: the database does not answer", health),
        },
    }


def _register() -> dict[str, Any]:
    body = _obj(
        [],
        {
            "asn": {"type": "integer", "minimum": 1},
            "network": {"type": "string", "minLength": 1, "maxLength": 64},
            "enrollment_key": STR,
        },
    )
    return {
        "summary": "register a probe (open, or gated by the configured enrollment key)",
        "requestBody": {"required": False, **_content(body)},
        "responses": {
            "201": _ok("registered", _obj(["probe_id", "token"], {"probe_id": STR, "token": STR})),
            **_errors(
                _400="malformed JSON or a bad field (named)",
                _403="enrollment_key missing or wrong",
                _413="body larger than limits.max_body_bytes",
                _429="too many registrations from this address",
            ),
            **DB_DOWN,
        },
    }


def _submit() -> dict[str, Any]:
    body = _obj(["records"], {"records": {"type": "array", "items": _ref("Measurement")}}, False)
    counts = {"accepted": INT, "inserted": INT, "duplicates": INT}
    return {
        "summary": "submit a batch of records: stored whole or not at all, idempotent by id",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, **_content(body)},
        "responses": {
            "200": _ok("committed (inserted + duplicates = accepted)", _obj(list(counts), counts)),
            **_errors(
                _400="malformed JSON, or a record and field at fault (named)",
                _401="missing or unknown bearer token",
                _403="a record claims another probe",
                _413="body or batch larger than the limits",
                _429="too many submissions from this probe or address",
            ),
            **DB_DOWN,
        },
    }


def _query() -> dict[str, Any]:
    page = _obj(
        ["measurements", "next_cursor"],
        {
            "measurements": {"type": "array", "items": _ref("StoredMeasurement")},
            "next_cursor": {**NULLSTR, "description": "null on the last page"},
        },
    )
    return {
        "summary": "stored records in (started_at, id) order, one page at a time",
        "parameters": FILTERS + PAGING,
        "responses": {"200": _ok("one page", page), **BAD_QUERY, **DB_DOWN},
    }


def _export() -> dict[str, Any]:
    csv = {"type": "string", "description": "CSV with the export's fixed columns"}
    ndjson = {"type": "string", "description": "one StoredMeasurement a line"}
    return {
        "summary": "every matching record, streamed (chunked) as JSON Lines or CSV",
        "parameters": [EXPORT_FORMAT, *FILTERS],
        "responses": {
            "200": {
                "description": "the records, in (started_at, id) order",
                "content": {
                    "application/x-ndjson": {"schema": ndjson},
                    "text/csv": {"schema": csv},
                },
            },
            **BAD_QUERY,
            **DB_DOWN,
        },
    }


def _control() -> dict[str, Any]:
    target = _obj(["url"], {"url": STR, "addresses": {"type": "array", "items": STR}}, False)
    answer = _obj(["url", "control"], {"url": STR, "control": {"type": "object"}})
    body = _obj(["targets"], {"targets": {"type": "array", "items": target}}, False)
    return {
        "summary": "measure URLs from the collector's vantage (the control)",
        "requestBody": {"required": True, **_content(body)},
        "responses": {
            "200": _ok(
                "one control a target, in order",
                _obj(["controls"], {"controls": {"type": "array", "items": answer}}),
            ),
            **_errors(
                _400="malformed JSON or a bad target (named)",
                _404="this collector runs no control vantage",
                _413="body larger than limits.max_body_bytes",
            ),
        },
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
    files = {media: {"schema": STR} for media in ("text/javascript", "text/css", "image/svg+xml")}
    return {
        "/": {
            "get": {
                "summary": "the dashboard: open flags, collateral, latest measurements (HTML)",
                "responses": {"200": _ok("the page", STR, "text/html")},
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "the dashboard's script, style sheet and icon",
                "parameters": [name],
                "responses": {
                    "200": {"description": "the file", "content": files},
                    **_errors(_404="no such file (only the page's own files are served)"),
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Surblocage collector", "version": __version__},
        "paths": {
            "/healthz": {"get": _health()},
            "/api/v1/probes": {"post": _register()},
            "/api/v1/measurements": {"post": _submit(), "get": _query()},
            "/api/v1/export": {"get": _export()},
            "/api/v1/control": {"post": _control()},
            "/api/v1/watchlist": {
                "get": {
                    "summary": "the watchlist probes measure (SPEC.md format)",
                    "responses": {
                        "200": _ok("the watchlist", WATCHLIST),
                        **_errors(_404="this collector serves no watchlist"),
                    },
                }
            },
            "/api/v1/flags": {
                "get": {
                    "summary": "blocking flags per (network, service, method)",
                    "description": "Reflects every batch acknowledged before the request. A flag "
                    "opens on agreeing blocked verdicts of a network's probes while the control "
                    "reaches the service, and closes when they reach it again.",
                    "parameters": FLAG_FILTERS,
                    "responses": {
                        "200": _ok(
                            "the flags, latest seen first",
                            _obj(
                                ["flags"],
                                {"flags": {"type": "array", "items": _ref("Flag")}},
                                False,
                            ),
                        ),
                        **_errors(
                            _400="a parameter at fault, named", _503="the database is unavailable"
                        ),
                    },
                }
            },
            "/api/v1/collateral": {
                "get": {
                    "summary": "addresses blocked at the address level, every service behind each",
                    "parameters": COLLATERAL_FILTERS,
                    "responses": {
                        "200": _ok(
                            "one row an address a network",
                            _obj(
                                ["addresses"],
                                {"addresses": {"type": "array", "items": _ref("Collateral")}},
                                False,
                            ),
                        ),
                        **_errors(
                            _400="a parameter at fault, named", _503="the database is unavailable"
                        ),
                    },
                }
            },
            "/api/v1/whoami": {
                "get": {
                    "summary": "the network the collector records for the caller (ASN database)",
                    "description": "The caller's address is looked up, then dropped: it is "
                    "never echoed, stored or logged.",
                    "responses": {
                        "200": _ok(
                            "the caller's network",
                            _obj(["asn", "network"], {"asn": INT, "network": NULLSTR}, False),
                        ),
                        **_errors(_404="no ASN database, or an address it does not know"),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": _ok("text exposition format", STR, "text/plain")},
                }
            },
            **_dashboard(),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
