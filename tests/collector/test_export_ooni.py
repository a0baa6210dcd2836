"""The OONI export: each line loads with the field names of OONI's own data format, and says what
our record says in OONI's words (route and command alike)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest

from collector import cli, export_ooni
from probe import record as rec
from tests.collector.harness import Collector, running
from tests.support import records

# The schema below is written from OONI's specification, not from our output (ooni/spec):
# - data-formats/df-000-base.md: the top-level keys of every measurement;
# - nettests/ts-017-web-connectivity.md ("Semantics", "Example output sample"): test_name,
#   measurement_start_time "YYYY-MM-DD HH:MM:SS", probe_asn "AS<n>", the test keys
#   dns_consistency, blocking ("tcp_ip" | "dns" | "http-diff" | "http-failure" | false | null),
#   accessible, control (the test helper's answer), control_failure, dns_experiment_failure,
#   client_resolver, and tcp_connect[].status.blocked;
# - data-formats/df-002-dnst.md: queries[] {hostname, query_type, answers[{answer_type, ipv4 |
#   ipv6 | hostname, ttl}], failure, resolver_*} (engine and resolver_address: ts-017 sample);
# - data-formats/df-005-tcpconnect.md: tcp_connect[] {ip, port, status {success, failure}};
# - data-formats/df-006-tlshandshake.md: tls_handshakes[] {address, server_name, tls_version,
#   failure, no_tls_verify, peer_certificates[{data, format}], cipher_suite, negotiated_protocol,
#   tags};
# - data-formats/df-001-httpt.md (and the ts-017 sample): requests[] {request {url, method,
#   headers, headers_list, body, body_is_truncated, tor}, response {code, headers, headers_list,
#   body, body_is_truncated} | null, failure};
# - data-formats/df-007-errors.md: the failure strings.
NULLABLE_STRING = {"type": ["string", "null"]}
FAILURE = {"$ref": "#/$defs/failure"}
HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}
HEADERS_LIST = {
    "type": "array",
    "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}]},
}
ENDPOINT = r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]):\d+$"
ANSWER = {
    "type": "object",
    "required": ["answer_type", "ttl"],
    "properties": {
        "answer_type": {"enum": ["A", "AAAA", "CNAME", "MX", "PTR", "SOA"]},
        "ipv4": {"type": "string", "format": "ipv4"},
        "ipv6": {"type": "string", "format": "ipv6"},
        "hostname": {"type": "string"},
        "ttl": {"type": ["integer", "null"]},
    },
    "allOf": [
        {"if": {"properties": {"answer_type": {"const": "A"}}}, "then": {"required": ["ipv4"]}},
        {
            "if": {"properties": {"answer_type": {"const": "AAAA"}}},
            "then": {"required": ["ipv6"]},
        },
        {
            "if": {"properties": {"answer_type": {"const": "CNAME"}}},
            "then": {"required": ["hostname"]},
        },
    ],
}
QUERY = {
    "type": "object",
    "required": [
        "hostname", "query_type", "answers", "failure", "engine", "resolver_address",
        "resolver_hostname", "resolver_port",
    ],
    "properties": {
        "hostname": {"type": "string"},
        "query_type": {"enum": ["A", "AAAA", "CNAME", "MX", "PTR", "SOA", "NS", "HTTPS"]},
        "answers": {"type": "array", "items": ANSWER},
        "failure": FAILURE,
        "engine": {"enum": ["system", "getaddrinfo", "udp", "tcp", "dot", "doh", "go"]},
        "resolver_address": {"type": "string"},
    },
}  # fmt: skip
TCP_CONNECT = {
    "type": "object",
    "required": ["ip", "port", "status"],
    "properties": {
        "ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        "port": {"type": "integer"},
        "status": {
            "type": "object",
            "required": ["success", "failure", "blocked"],
            "properties": {
                "success": {"type": "boolean"},
                "failure": FAILURE,
                "blocked": {"type": ["boolean", "null"]},
            },
        },
    },
}
TLS_HANDSHAKE = {
    "type": "object",
    "required": [
        "address", "server_name", "tls_version", "failure", "no_tls_verify",
        "peer_certificates", "cipher_suite", "negotiated_protocol", "tags",
    ],
    "properties": {
        "network": {"enum": ["tcp", "udp"]},
        "address": {"type": "string", "pattern": ENDPOINT},
        "server_name": {"type": "string"},
        "tls_version": {"type": "string"},
        "failure": FAILURE,
        "no_tls_verify": {"type": "boolean"},
        "peer_certificates": {
            "type": "array",
            "items": {"type": "object", "required": ["data", "format"]},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}  # fmt: skip
REQUEST = {
    "type": "object",
    "required": ["request", "response", "failure"],
    "properties": {
        "request": {
            "type": "object",
            "required": ["url", "method", "headers", "headers_list", "body", "tor"],
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "method": {"const": "GET"},
                "headers": HEADERS,
                "headers_list": HEADERS_LIST,
                "body": {"type": "string"},
                "body_is_truncated": {"type": "boolean"},
                "tor": {"type": "object", "required": ["is_tor"]},
            },
        },
        "response": {
            "type": ["object", "null"],
            "required": ["code", "headers", "headers_list", "body", "body_is_truncated"],
            "properties": {
                "code": {"type": "integer"},
                "headers": HEADERS,
                "headers_list": HEADERS_LIST,
                "body": NULLABLE_STRING,
                "body_is_truncated": {"type": "boolean"},
            },
        },
        "failure": FAILURE,
    },
}
CONTROL = {
    "type": "object",
    "properties": {
        "dns": {
            "type": "object",
            "required": ["failure", "addrs"],
            "properties": {"addrs": {"type": "array", "items": {"type": "string"}}},
        },
        "tcp_connect": {
            "type": "object",
            "propertyNames": {"pattern": ENDPOINT},
            "additionalProperties": {
                "type": "object",
                "required": ["status", "failure"],
                "properties": {"status": {"type": "boolean"}},
            },
        },
        "http_request": {
            "type": "object",
            "required": ["body_length", "failure", "title", "headers", "status_code"],
            "properties": {
                "body_length": {"type": "integer"},
                "status_code": {"type": "integer"},
                "headers": HEADERS,
            },
        },
    },
}
OONI_MEASUREMENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "failure": {
            "anyOf": [
                {"type": "null"},
                {
                    "enum": [
                        "android_dns_cache_no_data", "connection_aborted",
                        "connection_already_closed", "connection_refused", "connection_reset",
                        "dns_bogon_error", "dns_no_answer", "dns_non_recoverable_failure",
                        "dns_nxdomain_error", "dns_reply_with_wrong_query_id",
                        "dns_refused_error", "dns_server_misbehaving", "dns_servfail_error",
                        "dns_temporary_failure", "eof_error", "http_request_failed",
                        "host_unreachable", "generic_timeout_error", "interrupted",
                        "network_down", "network_reset", "network_unreachable",
                        "ssl_failed_handshake", "ssl_invalid_hostname", "ssl_unknown_authority",
                        "ssl_invalid_certificate",
                    ]
                },
                {"type": "string", "pattern": "^unknown_failure"},
            ]
        }
    },
    "type": "object",
    "required": [
        "annotations", "data_format_version", "input", "measurement_start_time",
        "test_start_time", "measurement_uid", "report_id", "probe_asn", "probe_cc", "probe_ip",
        "probe_network_name", "resolver_ip", "software_name", "software_version", "test_name",
        "test_version", "test_runtime", "test_keys",
    ],
    "properties": {
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "data_format_version": {"const": "0.2.0"},
        "input": {"type": "string", "format": "uri"},
        "measurement_start_time": {"pattern": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"},
        "test_start_time": {"pattern": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"},
        "measurement_uid": {"type": "string", "minLength": 1},
        "report_id": {"type": "string", "minLength": 1},
        "probe_asn": {"type": "string", "pattern": r"^AS\d+$"},
        "probe_cc": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "probe_ip": {"type": "string", "format": "ipv4"},
        "probe_network_name": NULLABLE_STRING,
        "resolver_ip": NULLABLE_STRING,
        "software_name": {"type": "string", "minLength": 1},
        "software_version": {"type": "string"},
        "test_name": {"const": "web_connectivity"},
        "test_version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "test_runtime": {"type": ["number", "null"]},
        "test_keys": {
            "type": "object",
            "required": [
                "queries", "tcp_connect", "tls_handshakes", "requests", "control",
                "control_failure", "dns_experiment_failure", "dns_consistency", "blocking",
                "accessible", "client_resolver",
            ],
            "properties": {
                "queries": {"type": "array", "items": QUERY},
                "tcp_connect": {"type": "array", "items": TCP_CONNECT},
                "tls_handshakes": {"type": "array", "items": TLS_HANDSHAKE},
                "requests": {"type": "array", "items": REQUEST},
                "control": CONTROL,
                "control_failure": NULLABLE_STRING,
                "dns_experiment_failure": FAILURE,
                "http_experiment_failure": FAILURE,
                "dns_consistency": {"enum": ["consistent", "reverse_match", "inconsistent", None]},
                "blocking": {"enum": ["tcp_ip", "dns", "http-diff", "http-failure", False, None]},
                "accessible": {"type": ["boolean", "null"]},
                "client_resolver": NULLABLE_STRING,
            },
            # test keys outside OONI's own are named x_... (df-000: extensions)
            "patternProperties": {"^x_": {"type": "object"}},
        },
    },
}  # fmt: skip
VALIDATOR = jsonschema.Draft202012Validator(
    OONI_MEASUREMENT, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
DOMAIN = "www.canalplus.com"
V6 = "2001:db8::7"


def control(*, reached: bool = True) -> rec.Control:
    return rec.Control(
        dns=[rec.DNSResult("9.9.9.9", "A", None, 5.0, "NOERROR", ["104.16.1.1"], name=DOMAIN)],
        tcp=[rec.TCPResult("104.16.1.1", 443, None if reached else "generic_timeout_error", 9.0)],
        tls=[rec.TLSResult("104.16.1.1", 443, DOMAIN, None, 9.0, version="TLSv1.3")],
        http=rec.HTTPResult(f"https://{DOMAIN}/", None, 9.0, status=200, title="CANAL+")
        if reached
        else None,
        measured_at="2026-03-01T20:00:01Z",
    )


def case(n: int, **fields: Any) -> dict[str, Any]:
    m = records.measurement(n, **fields)
    return m.to_dict()


CLEAN_DNS = [rec.DNSResult("192.168.1.1", "A", None, 5.0, "NOERROR", ["104.16.1.1"])]
OK_IPV4_ONLY = dict(
    dns=[
        rec.DNSResult(
            "192.168.1.1", "A", None, 5.0, "NOERROR", ["104.16.1.1"], cnames=["edge.example"]
        ),
        rec.DNSResult("192.168.1.1", "AAAA", "dns_no_answer", 5.0, "NOERROR"),
    ],
    control=control(),
    verdict=rec.Verdict("ok"),
)
CASES: dict[str, dict[str, Any]] = {
    "ok": OK_IPV4_ONLY,
    "dns": dict(
        dns=[rec.DNSResult("192.168.1.1", "A", "dns_nxdomain_error", 5.0, "NXDOMAIN")],
        tcp=[],
        tls=[],
        http=None,
        control=control(),
        verdict=rec.Verdict("blocked", "dns", "nxdomain"),
    ),
    "servfail": dict(
        dns=[rec.DNSResult("192.168.1.1:5353", "A", "dns_server_failure", 5.0, "SERVFAIL")],
        tcp=[],
        tls=[],
        http=None,
        control=control(),
        verdict=rec.Verdict("blocked", "dns", "servfail"),
    ),
    "tcp_ip": dict(
        dns=[
            rec.DNSResult("192.168.1.1", "A", None, 5.0, "NOERROR", ["104.16.1.1"]),
            rec.DNSResult("192.168.1.1", "AAAA", None, 5.0, "NOERROR", [V6]),
        ],
        tcp=[
            rec.TCPResult("104.16.1.1", 443, "generic_timeout_error", 9.0),
            rec.TCPResult(V6, 443, "connection_reset", 9.0),
        ],
        tls=[],
        http=None,
        control=control(),
        verdict=rec.Verdict("blocked", "tcp_ip", "timeout"),
    ),
    "tls_sni": dict(
        dns=CLEAN_DNS,
        tls=[
            rec.TLSResult("104.16.1.1", 443, DOMAIN, "connection_reset", 9.0),
            rec.TLSResult(
                "104.16.1.1", 443, "www.example.com", None, 9.0, version="TLSv1.3", neutral=True
            ),
        ],
        http=None,
        control=control(),
        verdict=rec.Verdict("blocked", "tls", "reset_sni"),
    ),
    "blockpage": dict(
        dns=CLEAN_DNS,
        http=rec.HTTPResult(
            "https://blocked.example/stop",
            None,
            9.0,
            status=451,
            body_length=9000,
            title="Blocked",
            headers={"Content-Type": "text/html"},
            redirects=[
                rec.Redirect(f"https://{DOMAIN}/", 302, "https://hop.example/"),
                rec.Redirect("https://hop.example/", 302, "https://blocked.example/stop"),
            ],
            body_head="<html><title>Blocked</title>",
        ),
        control=control(),
        verdict=rec.Verdict("blocked", "http_blockpage", None, "orange_blockpage"),
    ),
    "down": dict(
        dns=CLEAN_DNS,
        tcp=[rec.TCPResult("104.16.1.1", 443, "generic_timeout_error", 9.0)],
        tls=[],
        http=None,
        control=control(reached=False),
        verdict=rec.Verdict("down", None, "tcp"),
    ),
    "inconclusive": dict(
        dns=CLEAN_DNS, control=None, verdict=rec.Verdict("inconclusive", None, "no_control")
    ),
}
NUMBERS = {name: n for n, name in enumerate(CASES, start=1)}


@pytest.fixture
async def filled(db_url: str) -> AsyncIterator[tuple[Collector, str]]:
    async with running(db_url) as c:
        _, token = await c.register(asn=3215, network="Orange")
        body = {"records": [case(NUMBERS[name], **f) for name, f in CASES.items()]}
        for r in body["records"]:
            r["probe"]["id"] = None
        status, answer = await c.submit(token, body)
        assert status == 200, answer
        yield c, db_url


async def exported(c: Collector, **params: str) -> list[dict[str, Any]]:
    async with c.client.get("/api/v1/export", params={"format": "ooni", **params}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        assert "measurements.ooni.jsonl" in r.headers["Content-Disposition"]
        return [json.loads(line) for line in (await r.read()).decode().splitlines()]


def by_record(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    named = {records.record_id(n): name for name, n in NUMBERS.items()}
    return {named[m["annotations"]["surblocage_record_id"]]: m for m in lines}


async def test_every_line_loads_with_oonis_field_names(filled: tuple[Collector, str]) -> None:
    lines = await exported(filled[0])
    assert len(lines) == len(CASES)
    for m in lines:
        errors = sorted(VALIDATOR.iter_errors(m), key=str)
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


async def test_blocking_and_accessible_say_our_verdict_in_oonis_words(
    filled: tuple[Collector, str],
) -> None:
    got = by_record(await exported(filled[0]))
    keys = {
        name: (m["test_keys"]["blocking"], m["test_keys"]["accessible"]) for name, m in got.items()
    }
    assert keys == {
        "ok": (False, True),
        "dns": ("dns", False),
        "servfail": ("dns", False),
        "tcp_ip": ("tcp_ip", False),
        "tls_sni": ("http-failure", False),
        "blockpage": ("http-diff", False),
        "down": (False, False),
        "inconclusive": (None, None),
    }


async def test_the_steps_map_field_by_field(filled: tuple[Collector, str]) -> None:
    got = by_record(await exported(filled[0]))
    ok = got["ok"]
    assert ok["probe_asn"] == "AS3215" and ok["probe_cc"] == "FR"
    assert ok["probe_network_name"] == "Orange" and ok["probe_ip"] == "127.0.0.1"
    assert ok["measurement_start_time"] == "2026-03-01 20:00:00"
    assert ok["input"] == f"https://{DOMAIN}/"
    assert (ok["software_name"], ok["software_version"]) == ("surblocage", "0.1.0")
    uid = records.record_id(NUMBERS["ok"]).replace("-", "")
    assert ok["measurement_uid"].endswith(uid) and uid in ok["report_id"]
    [a, aaaa] = ok["test_keys"]["queries"]
    assert a["answers"] == [
        {"answer_type": "CNAME", "hostname": "edge.example", "ttl": None},
        {"answer_type": "A", "ipv4": "104.16.1.1", "ttl": None},
    ]
    assert (a["hostname"], a["resolver_address"], a["engine"]) == (DOMAIN, "192.168.1.1:53", "udp")
    assert (aaaa["query_type"], aaaa["failure"]) == ("AAAA", "dns_no_answer")
    # the AAAA without answer is not the lookup's failure: A decided, and answered
    assert ok["test_keys"]["dns_experiment_failure"] is None
    assert ok["test_keys"]["dns_consistency"] == "consistent"
    assert ok["test_keys"]["control"]["dns"] == {"failure": None, "addrs": ["104.16.1.1"]}

    servfail = got["servfail"]["test_keys"]
    assert servfail["queries"][0]["failure"] == "dns_servfail_error"  # a probe's word for it
    assert servfail["queries"][0]["resolver_address"] == "192.168.1.1:5353"
    assert servfail["dns_experiment_failure"] == "dns_servfail_error"

    tcp = got["tcp_ip"]["test_keys"]["tcp_connect"]
    assert tcp == [
        {
            "ip": "104.16.1.1",
            "port": 443,
            "status": {"success": False, "failure": "generic_timeout_error", "blocked": True},
        },
        {
            "ip": V6,
            "port": 443,
            "status": {"success": False, "failure": "connection_reset", "blocked": True},
        },
    ]
    assert got["down"]["test_keys"]["tcp_connect"][0]["status"]["blocked"] is False
    assert got["ok"]["test_keys"]["tcp_connect"][0]["status"] == {
        "success": True,
        "failure": None,
        "blocked": False,
    }

    cut, neutral = got["tls_sni"]["test_keys"]["tls_handshakes"]
    assert (cut["address"], cut["server_name"], cut["failure"]) == (
        "104.16.1.1:443",
        DOMAIN,
        "connection_reset",
    )
    assert (neutral["no_tls_verify"], neutral["tags"], neutral["tls_version"]) == (
        True,
        ["neutral_sni"],
        "TLSv1.3",
    )

    final, second, first = got["blockpage"]["test_keys"]["requests"]
    assert final["request"]["url"] == "https://blocked.example/stop"
    assert final["response"]["code"] == 451
    assert final["response"]["body"] == "<html><title>Blocked</title>"
    assert final["response"]["body_is_truncated"] is True
    assert final["response"]["headers_list"] == [["Content-Type", "text/html"]]
    assert [second["request"]["url"], first["request"]["url"]] == [
        "https://hop.example/",
        f"https://{DOMAIN}/",
    ]
    assert first["response"]["headers"] == {"Location": "https://hop.example/"}
    extra = got["blockpage"]["test_keys"]["x_surblocage"]
    assert extra["verdict"]["method"] in ("http_blockpage", "http_diff")
    assert got["inconclusive"]["test_keys"]["control"] == {}


async def test_the_command_writes_what_the_route_streams(
    filled: tuple[Collector, str], tmp_path: pathlib.Path
) -> None:
    c, db_url = filled
    out = tmp_path / "ooni.jsonl"
    assert cli.main(["export", "--db", db_url, "--format", "ooni", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == await exported(c)
    assert [m["annotations"]["surblocage_record_id"] for m in lines] == [
        m["annotations"]["surblocage_record_id"] for m in (await exported(c, order="desc"))[::-1]
    ]


def test_ooni_is_for_measurements_only(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", "--db", sqlite_url, "--what", "flags", "--format", "ooni"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "surblocage-collector: argument --format: ooni is for --what measurements only"
    ] or (len(err) == 1 and "argument --format: ooni is for --what measurements only" in err[0])


def test_the_same_record_gives_the_same_ids() -> None:
    item = case(1, **OK_IPV4_ONLY)
    one, two = export_ooni.measurement(item), export_ooni.measurement(dict(item))
    assert (one["measurement_uid"], one["report_id"]) == (two["measurement_uid"], two["report_id"])
