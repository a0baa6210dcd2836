"""The probe's measurement in the lab: `surblocage-probe check --json --no-control` in a probe ns.

The probe runs as a real process behind ISP "a" (its resolver lies, its middlebox filters) and
must write, for each planted technique, a record holding every field of docs/spec.md with the
right OONI failure string at the right step.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.lab.plan import BY_NAME
from tests.lab.technique import Check
from tests.lab.topology import Lab

# the cases a probe's record must tell apart (DNS, TCP and TLS failures, a reset host, a redirect
# chain, a capped body, a private answer, and honest HTTP and HTTPS), by the technique planting each
FAILURE_CASES = (
    "dns_nxdomain", "dns_servfail", "dns_refused_ede", "dns_empty", "dns_drop", "ip_reset",
    "ip_drop", "sni_reset", "tls_wrong_name", "tls_unknown_ca", "host_reset", "redirect_chain",
    "big_body", "dns_bogon_private", "ok_http", "ok_https",
)  # fmt: skip

SPEC_KEYS = {
    "": {"schema", "id", "probe", "target", "started_at", "duration_ms", "dns", "tcp", "tls",
         "http", "control", "verdict"},
    "probe": {"id", "software", "asn", "network", "cc", "resolver"},
    "target": {"service", "url", "domain", "category"},
    "dns": {"resolver", "qtype", "rcode", "answers", "ede", "failure", "ms"},
    "tcp": {"ip", "port", "failure", "ms"},
    "tls": {"ip", "port", "sni", "failure", "version", "cert_valid", "ms"},
    "http": {"url", "failure", "status", "body_length", "body_sha256", "title", "headers",
             "redirects", "ms"},
    "verdict": {"status", "method", "detail", "blockpage"},
}  # fmt: skip


@pytest.fixture(scope="module")
def records(lab: Lab) -> dict[str, dict[str, Any]]:
    """Run one `check` over every failure case's URL; return its records by URL."""
    urls = [c.url for name in FAILURE_CASES for c in BY_NAME[name].checks]
    argv = lab.probe_argv(BY_NAME["ok_http"])  # --resolver, --ca-file, --allow-network, fps
    argv = [a for a in argv if a not in BY_NAME["ok_http"].urls]
    result = lab.exec("probe_a", [*argv, "--timeout", "2", "--quiet", *urls], timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["target"]["url"] for r in lines] == urls  # one record a target, in input order
    return {r["target"]["url"]: r for r in lines}


def step_failure(record: dict[str, Any], check: Check) -> str | None:
    """The failure string the record holds at the step a plain client stopped at."""
    if check.step == "dns":
        return next(r["failure"] for r in record["dns"] if r["qtype"] == "A")
    if check.step == "tcp":
        return record["tcp"][0]["failure"]
    if check.step == "tls":
        return next(t["failure"] for t in record["tls"] if not t["neutral"])
    return record["http"]["failure"]


@pytest.mark.parametrize("name", FAILURE_CASES)
def test_failure_string_at_the_right_step(records: dict[str, dict[str, Any]], name: str) -> None:
    for check in BY_NAME[name].checks:
        record = records[check.url]
        if check.step is None:
            assert record["http"]["failure"] is None
            assert record["http"]["status"] == check.status
        elif check.failure is not None:
            assert step_failure(record, check) == check.failure, json.dumps(record)[:2000]


@pytest.mark.parametrize("name", FAILURE_CASES)
def test_record_holds_every_spec_field(records: dict[str, dict[str, Any]], name: str) -> None:
    for check in BY_NAME[name].checks:
        record = records[check.url]
        assert SPEC_KEYS[""] <= set(record)
        assert record["schema"] == 1
        for section in ("probe", "target", "verdict"):
            assert SPEC_KEYS[section] <= set(record[section]), section
        for section in ("dns", "tcp", "tls"):
            for entry in record[section]:
                assert SPEC_KEYS[section] <= set(entry), section
        if record["http"] is not None:
            assert SPEC_KEYS["http"] <= set(record["http"])
        assert record["control"] is None  # --no-control
        assert record["verdict"]["status"] in ("inconclusive", "blocked")


def test_refused_carries_the_extended_dns_error(records: dict[str, dict[str, Any]]) -> None:
    record = records[BY_NAME["dns_refused_ede"].urls[0]]
    a = next(r for r in record["dns"] if r["qtype"] == "A")
    assert (a["rcode"], a["ede"]) == ("REFUSED", [{"code": 16, "text": "Censored"}])
    # the resolver says it censors: that decides alone, without a control
    assert record["verdict"]["status"] == "blocked"


def test_bogon_answer_is_recorded_and_never_connected_to(
    lab: Lab, records: dict[str, dict[str, Any]]
) -> None:
    record = records[BY_NAME["dns_bogon_private"].urls[0]]
    assert "10.10.34.35" in [a for r in record["dns"] for a in r["answers"]]
    assert record["tcp"] == [] and record["http"] is None
    assert lab.rule_packets("a", "10.10.34.35") == 0  # not one packet left for it


def test_redirect_chain_and_body_cap(records: dict[str, dict[str, Any]]) -> None:
    chain = records[BY_NAME["redirect_chain"].urls[0]]["http"]
    assert [r["status"] for r in chain["redirects"]] == [302, 301]
    assert chain["url"] == "https://ok.example/"
    big = records[BY_NAME["big_body"].urls[0]]["http"]
    assert (big["body_length"], big["body_truncated"]) == (512 * 1024, True)


def test_bad_usage_exits_2_with_one_line(lab: Lab) -> None:
    command = lab.probe_argv(BY_NAME["ok_http"])[0]
    for argv in (
        ["check", "--bogus"],
        ["check", "ftp://x.example/"],
        ["check", "--config", "/nonexistent.yaml", "a.example"],
    ):
        result = lab.exec("probe_a", [command, *argv])
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
