"""Stored measurements as OONI measurements: `export --format ooni`, `export?format=ooni`.

Contract (docs/spec.md, "The OONI export"): one JSON line per record, in the shape of OONI's
web_connectivity measurements (ooni/spec data-formats/df-000-base.md, df-001-httpt.md,
df-002-dnst.md, df-005-tcpconnect.md, df-006-tlshandshake.md, nettests/ts-017-web-
connectivity.md), with OONI's field names and failure strings (ours are already OONI's). What
OONI's format has no field for is under ``test_keys.x_surblocage`` (OONI's extension prefix) and,
as strings, in ``annotations``. A record's ids are kept: ``measurement_uid`` and ``report_id``
are derived from the record id and its start time, so a second export says the same.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
from typing import Any

from collector import export
from probe import failures, kinds
from probe.times import parse_rfc3339

TEST_NAME = "web_connectivity"
# the web_connectivity version whose test keys these follow (ts-017); software_* say who measured
TEST_VERSION = "0.4.3"
DATA_FORMAT_VERSION = "0.2.0"
REDACTED_IP = "127.0.0.1"  # OONI's placeholder for a probe address not published (df-000)
# our verdict -> OONI's blocking reason (ts-017 "Semantics"); TLS cuts are OONI's http-failure
BLOCKING = {
    "dns": "dns",
    "tcp_ip": "tcp_ip",
    "tls": "http-failure",
    "http_failure": "http-failure",
    "http_blockpage": "http-diff",
    "http_diff": "http-diff",
}
# DNS verdict details that say the answers themselves were wrong (OONI: dns_consistency)
INCONSISTENT = frozenset({"bogon", "blockpage_ip", "inconsistent"})


def blocking_accessible(verdict: dict[str, Any] | None) -> tuple[Any, bool | None]:
    """OONI's (blocking, accessible) for our verdict: ok (false, true); blocked (the reason,
    false); down (false, false: OONI Explorer's "down"); inconclusive (null, null)."""
    status = (verdict or {}).get("status")
    if status == "ok":
        return False, True
    if status == "blocked":
        return BLOCKING.get(str((verdict or {}).get("method")), None), False
    if status == "down":
        return False, False
    return None, None


def endpoint(ip: str, port: int | None) -> str:
    """An address and port as OONI writes them: 192.0.2.1:443, [2001:db8::1]:443."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}"


@functools.lru_cache(maxsize=1024)  # a few resolvers, thousands of queries
def _resolver_address(resolver: Any) -> str | None:
    if not isinstance(resolver, str):
        return None
    try:
        host, port = kinds.parse_resolver(resolver)
    except ValueError:
        return resolver
    return endpoint(host, port)


@functools.lru_cache(maxsize=1024)
def _resolver_host(resolver: Any) -> str | None:
    if not isinstance(resolver, str):
        return None
    try:
        return kinds.parse_resolver(resolver)[0]
    except ValueError:
        return resolver


@functools.lru_cache(maxsize=65_536)  # the services' addresses recur in every record
def _answer_key(address: str) -> tuple[str, str] | None:
    """("A", "ipv4") or ("AAAA", "ipv6") for an address; None for a text that is none (a
    record's answers are whatever the probe sent)."""
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None
    return ("A", "ipv4") if version == 4 else ("AAAA", "ipv6")


def _answers(query: dict[str, Any]) -> list[dict[str, Any]]:
    """df-002 answers: the CNAME chain, then the addresses (we keep no TTL: null)."""
    out: list[dict[str, Any]] = [
        {"answer_type": "CNAME", "hostname": name, "ttl": None}
        for name in query.get("cnames") or ()
    ]
    for address in query.get("answers") or ():
        found = _answer_key(address) if isinstance(address, str) else None
        if found is not None:
            out.append({"answer_type": found[0], found[1]: address, "ttl": None})
    return out


def queries(item: dict[str, Any]) -> list[dict[str, Any]]:
    """test_keys.queries (df-002): one per DNS query of the record, in record order."""
    domain = (item.get("target") or {}).get("domain")
    return [
        {
            "hostname": q.get("name") or domain,
            "query_type": q.get("qtype"),
            "answers": _answers(q),
            "failure": failures.as_ooni_probe(q.get("failure")),
            "engine": q.get("transport") or "udp",
            "resolver_address": _resolver_address(q.get("resolver")),
            "resolver_hostname": None,
            "resolver_port": None,
        }
        for q in item.get("dns") or ()
        if isinstance(q, dict)
    ]


def tcp_connect(item: dict[str, Any], blocking: Any) -> list[dict[str, Any]]:
    """test_keys.tcp_connect (df-005). ``status.blocked`` (ts-017) is our verdict's: true on a
    failed connect of a record blocked at tcp_ip, false on any other with a control, else null."""
    has_control = bool(item.get("control")) and not (item.get("control") or {}).get("failure")
    out = []
    for c in item.get("tcp") or ():
        failure = c.get("failure")
        blocked: bool | None = False
        if failure is not None:
            blocked = True if blocking == "tcp_ip" else (False if has_control else None)
        status = {"success": failure is None, "failure": failure, "blocked": blocked}
        out.append({"ip": c.get("ip"), "port": c.get("port"), "status": status})
    return out


def tls_handshakes(item: dict[str, Any]) -> list[dict[str, Any]]:
    """test_keys.tls_handshakes (df-006); the handshake retried with a neutral name does not
    verify the certificate (no_tls_verify) and is tagged. No certificate is kept: none is sent."""
    return [
        {
            "network": "tcp",
            "address": endpoint(str(t.get("ip")), t.get("port")),
            "server_name": t.get("sni"),
            "tls_version": t.get("version") or "",
            "cipher_suite": "",
            "negotiated_protocol": "",
            "no_tls_verify": bool(t.get("neutral")),
            "peer_certificates": [],
            "failure": t.get("failure"),
            "tags": ["neutral_sni"] if t.get("neutral") else [],
        }
        for t in item.get("tls") or ()
        if isinstance(t, dict)
    ]


def _request(url: Any) -> dict[str, Any]:
    """A request as df-001 writes it; the headers we sent are not kept in the record."""
    return {
        "url": url,
        "method": "GET",
        "headers": {},
        "headers_list": [],
        "body": "",
        "body_is_truncated": False,
        "tor": {"is_tor": False, "exit_ip": None, "exit_name": None},
    }


def _response(code: Any, headers: dict[str, Any], body: str | None, cut: bool) -> dict[str, Any]:
    """A response as df-001 writes it: headers as a map and as a list of pairs."""
    return {
        "code": code,
        "headers": headers,
        "headers_list": [[k, v] for k, v in headers.items()],
        "body": body,
        "body_is_truncated": cut,
    }


def requests(item: dict[str, Any]) -> list[dict[str, Any]]:
    """test_keys.requests (df-001), the last request first as OONI orders them: the final
    response (its body is the first 4,096 characters we keep: truncated), then each redirect."""
    http = item.get("http")
    if not isinstance(http, dict):
        return []
    head = http.get("body_head")
    final_response = None
    if http.get("status") is not None:
        length = http.get("body_length") or 0
        cut = head is not None and (bool(http.get("body_truncated")) or len(head.encode()) < length)
        final_response = _response(http.get("status"), dict(http.get("headers") or {}), head, cut)
    out = [
        {
            "request": _request(http.get("url")),
            "response": final_response,
            "failure": http.get("failure"),
        }
    ]
    for hop in reversed(http.get("redirects") or []):
        response = _response(hop.get("status"), {"Location": hop.get("location")}, None, False)
        out.append({"request": _request(hop.get("url")), "response": response, "failure": None})
    return out


def control(item: dict[str, Any]) -> dict[str, Any]:
    """test_keys.control in the test helper's answer shape (ts-017), from our record's control."""
    c = item.get("control")
    if not isinstance(c, dict):
        return {}
    domain = (item.get("target") or {}).get("domain")
    dns = [q for q in c.get("dns") or () if q.get("name") in (None, domain)]
    addrs = list(dict.fromkeys(a for q in dns for a in q.get("answers") or ()))
    http = c.get("http") or {}
    return {
        "dns": {
            "failure": export.dns_failure({"target": {"domain": domain}, "dns": dns}),
            "addrs": addrs,
        },
        "tcp_connect": {
            endpoint(str(t.get("ip")), t.get("port")): {
                "status": t.get("failure") is None,
                "failure": t.get("failure"),
            }
            for t in c.get("tcp") or ()
        },
        "tls_handshake": {
            endpoint(str(t.get("ip")), t.get("port")): {
                "server_name": t.get("sni"),
                "status": t.get("failure") is None,
                "failure": t.get("failure"),
            }
            for t in c.get("tls") or ()
        },
        "http_request": {
            # the test helper says -1 for what it could not get (ts-017); our control keeps no page
            "status_code": _count_or_minus_one(http.get("status")),
            "body_length": _count_or_minus_one(http.get("body_length")),
            "title": http.get("title") or "",
            "headers": dict(http.get("headers") or {}),
            "failure": http.get("failure") if http else c.get("failure"),
        },
    }


def _count_or_minus_one(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _start(item: dict[str, Any]) -> datetime.datetime:
    return parse_rfc3339(str(item.get("started_at"))).astimezone(datetime.UTC)


def _dns_consistency(verdict: dict[str, Any]) -> str | None:
    if verdict.get("status") == "blocked" and verdict.get("method") == "dns":
        return "inconsistent" if verdict.get("detail") in INCONSISTENT else None
    return "consistent" if verdict.get("status") == "ok" else None


def measurement(item: dict[str, Any]) -> dict[str, Any]:
    """One stored record (as the query API answers it) as an OONI web_connectivity measurement."""
    probe, target = item.get("probe") or {}, item.get("target") or {}
    verdict = item.get("verdict") or {}
    start = _start(item)
    started = start.strftime("%Y-%m-%d %H:%M:%S")
    uid = str(item["id"]).replace("-", "")
    asn, cc = probe.get("asn"), probe.get("cc") or "ZZ"
    software, _, version = str(probe.get("software") or "surblocage/").partition("/")
    blocking, accessible = blocking_accessible(verdict)
    http = item.get("http") if isinstance(item.get("http"), dict) else {}
    duration = item.get("duration_ms")
    return {
        "annotations": {
            "surblocage_record_id": str(item["id"]),
            "surblocage_service": str(target.get("service")),
            "surblocage_category": str(target.get("category")),
            "surblocage_network": str(probe.get("network") or ""),
        },
        "data_format_version": DATA_FORMAT_VERSION,
        "input": target.get("url"),
        "measurement_start_time": started,
        "test_start_time": started,
        "measurement_uid": f"{start:%Y%m%d%H%M%S.%f}_{cc}_{TEST_NAME}_{uid}",
        "report_id": f"{start:%Y%m%dT%H%M%SZ}_webconnectivity_{cc}_{asn or 0}_n1_{uid}",
        "probe_asn": f"AS{asn or 0}",
        "probe_cc": cc,
        "probe_ip": REDACTED_IP,
        "probe_network_name": probe.get("network"),
        "resolver_ip": _resolver_address(probe.get("resolver")),
        "software_name": software or "surblocage",
        "software_version": version,
        "test_name": TEST_NAME,
        "test_version": TEST_VERSION,
        "test_runtime": duration / 1000 if isinstance(duration, int | float) else None,
        "test_keys": {
            "queries": queries(item),
            "tcp_connect": tcp_connect(item, blocking),
            "tls_handshakes": tls_handshakes(item),
            "requests": requests(item),
            "control": control(item),
            "control_failure": (item.get("control") or {}).get("failure"),
            "dns_experiment_failure": failures.as_ooni_probe(export.dns_failure(item)),
            "client_resolver": _resolver_host(probe.get("resolver")),
            "http_experiment_failure": (http or {}).get("failure"),
            "dns_consistency": _dns_consistency(verdict),
            "blocking": blocking,
            "accessible": accessible,
            "x_surblocage": {
                "verdict": item.get("verdict"),
                "probe_verdict": item.get("probe_verdict"),
                "target": target,
                "probe_id": probe.get("id"),
                "received_at": item.get("received_at"),
                "http": {
                    k: (http or {}).get(k) for k in ("title", "body_sha256", "body_length", "ip")
                },
                # OONI has no field for where the interference sits: the record's as stored
                "diagnostics": item.get("diagnostics"),
            },
        },
    }


# the measurements' layout, with its ooni shape
LAYOUT = dataclasses.replace(export.MEASUREMENTS, shape=measurement)
