"""What the lighter probe keeps the same: records, verdicts, signature matches, the order of
`check --json`'s lines; and what `check` no longer imports."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from probe import fingerprints, verdict
from probe.fingerprints import Fingerprint, FingerprintSet
from probe.output import InOrder
from probe.record import (
    EDE,
    Control,
    DNSResult,
    Measurement,
    PathVerdict,
    Redirect,
    Verdict,
)
from tests.test_verdict import CASES, REAL, dns, http, ok_https, record, tcp, tls

ROOT = pathlib.Path(__file__).resolve().parents[1]


def generic_encode(obj: Any) -> Any:
    """The record's JSON form walked field by field, as encode did before it cached the names."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: generic_encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if "schema" in out:
            out = {"schema": out.pop("schema"), **out}
        return out
    if isinstance(obj, list):
        return [generic_encode(x) for x in obj]
    if isinstance(obj, dict):
        return {k: generic_encode(v) for k, v in obj.items()}
    return obj


def full_record() -> Measurement:
    """A record with every block filled: control, verdict, paths, redirects, EDE."""
    chain = [Redirect(url="http://www.example.fr/", status=301, location="https://www.example.fr/")]
    answers = dns([REAL], ede=[EDE(code=15, text="Blocked")])
    return dataclasses.replace(
        ok_https(),
        dns=answers,
        http=http(
            headers={"server": "nginx", "via": "1.1 x"},
            redirects=chain,
            ip=REAL,
            body_head="<title>é</title>",
            body_sha256="0" * 64,
        ),
        control=Control(dns=dns([REAL]), tcp=[tcp()], tls=[tls()], http=http()),
        verdict=Verdict("blocked", "dns", "blockpage_ip", blockpage="ede_15"),
        paths=[PathVerdict(path="isp", transport="udp", resolver="r", status="ok")],
    )


@pytest.mark.parametrize("m", [full_record(), ok_https(), record()])
def test_the_json_form_is_the_generic_walk_byte_for_byte(m: Measurement) -> None:
    expected = json.dumps(generic_encode(m), separators=(",", ":"), ensure_ascii=False)
    assert m.to_json() == expected
    assert next(iter(m.to_dict())) == "schema"
    assert Measurement.from_json(m.to_json()) == m


def two_paths(m: Measurement, primary: str | None) -> Measurement:
    """``m`` seen through two resolver paths: the ISP's (its own answers) and a public one."""
    isp = [dataclasses.replace(r, path="isp") for r in m.dns]
    public = [dataclasses.replace(r, path="pub") for r in dns([REAL])]
    probe = dataclasses.replace(m.probe, path=primary)
    return dataclasses.replace(m, dns=isp + public, probe=probe)


FPS = fingerprints.default_fingerprints()


@pytest.mark.parametrize(("name", "m", "control", "want"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("primary", ["isp", "pub", None])
def test_judge_is_decide_and_decide_paths(
    name: str, m: Measurement, control: Control | None, want: Any, primary: str | None
) -> None:
    for seen in (m, two_paths(m, primary)):
        expected = (
            verdict.decide(seen, control, FPS),
            verdict.decide_paths(seen, control, FPS),
        )
        assert verdict.judge(seen, control, FPS) == expected
    assert verdict.judge(m, control)[0] == verdict.decide(m, control)


def linear_first(fps: FingerprintSet, fields: dict[str, Sequence[str]], asn: int | None) -> Any:
    """The first signature in the set's order whose field has a matching value (the scan the
    set did before it indexed its signatures by field)."""
    for fp in fps.fingerprints:
        if fp.asns and asn not in fp.asns:
            continue
        if any(fp.test(v) for v in fields.get(fp.observes, ())):
            return fp
    return None


SIGNATURES = FingerprintSet(
    (
        *FPS.fingerprints,
        Fingerprint("body_any", "http_body", "Accès bloqué"),
        Fingerprint("title_orange", "http_title", "Orange", asns=(3215,)),
        Fingerprint("status_451", "http_status", "451", confidence="confirmed"),
        Fingerprint("server_box", "http_header", "Server: blockbox", confidence="confirmed"),
        Fingerprint("addr", "dns_address", "10.9.9.9", confidence="confirmed"),
        Fingerprint("net", "dns_address", "10.9.0.0/16", match="cidr"),
        Fingerprint("fp_title", "http_title", "Accès bloqué", false_positive=True),
        Fingerprint("cert", "tls_cert", "CN=blockbox"),
    )
)
FIELDS: list[dict[str, Sequence[str]]] = [
    {"http_body": ["<p>Accès bloqué</p>"], "http_title": ["Accès bloqué"], "http_status": ["451"]},
    {"http_title": ["Orange"], "http_status": ["200"], "header:server": ["blockbox"]},
    {"http_body": [], "http_title": [], "http_status": ["200"], "header:server": ["nginx"]},
    {"dns_address": ["10.9.9.9", "10.9.1.1"], "dns_cname": []},
    {"dns_address": ["10.9.1.1", "not an address", "2001:db8::1"], "dns_cname": ["x.example"]},
    {"dns_address": [], "dns_rcode": ["NXDOMAIN"], "dns_ede": ["15"], "dns_ede_text": []},
    {"tls_cert": ["CN=blockbox", "CN=Some CA"]},
    {},
]


@pytest.mark.parametrize("fields", FIELDS)
@pytest.mark.parametrize("asn", [None, 3215, 12322])
def test_the_indexed_match_is_the_first_in_order(
    fields: dict[str, Sequence[str]], asn: int | None
) -> None:
    assert SIGNATURES._first(fields, asn) == linear_first(SIGNATURES, fields, asn)


def test_the_packaged_signatures_still_match_their_block_pages() -> None:
    expected = [linear_first(FPS, f, 3215) for f in FIELDS]
    assert [FPS._first(f, 3215) for f in FIELDS] == expected


def test_records_are_handed_on_in_input_order_as_soon_as_they_can_be() -> None:
    out: list[str] = []
    waiting: list[int] = []
    printer = InOrder(lambda m: out.append(m.target.url))
    records = [record(url=f"https://t{i}.example/") for i in range(6)]
    for i in (1, 2, 0, 5, 3, 4):
        printer(i, records[i])
        waiting.append(len(printer.waiting))
    assert out == [m.target.url for m in records]
    # 0 releases 0, 1 and 2 at once; 3 releases itself, 5 waits for 4
    assert waiting == [1, 2, 0, 1, 1, 0]


def probe_process(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


# What `check` measuring over plain UDP DNS, without a control, must not load: the collector's
# stack, scapy, aiohttp (only the collector's client and DoH use it), the daemon's modules
NOT_FOR_CHECK = (
    "collector", "sqlalchemy", "alembic", "psycopg", "prometheus_client", "scapy", "aiohttp",
    "probe.daemon.lifecycle", "probe.daemon.spool", "probe.daemon.status", "probe.census",
    "probe.sweep",
)  # fmt: skip
RUN_CHECK = """
import json, sys
from probe import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_check_imports_neither_the_collector_nor_aiohttp_nor_the_daemon(closed_port: int) -> None:
    argv = ["check", "--json", "--quiet", "--no-control", "--resolver",
            f"127.0.0.1:{closed_port}", "--timeout", "0.5", "a.example", "b.example"]  # fmt: skip
    r = probe_process(RUN_CHECK, *argv)
    found = json.loads(r.stderr.strip().splitlines()[-1])
    assert found["code"] == 0, r.stderr
    loaded = [m for m in found["modules"] if m.startswith(NOT_FOR_CHECK)]
    assert loaded == []
    lines = r.stdout.splitlines()
    assert [json.loads(line)["target"]["url"] for line in lines] == [
        "https://a.example/", "https://b.example/"
    ]  # fmt: skip
    for line in lines:
        m = Measurement.from_json(line)
        assert m.to_json() == line  # the streamed line is the record's one JSON form
        assert m.dns[0].failure == "connection_refused"
        assert isinstance(m.dns[0], DNSResult)


def test_a_control_still_loads_aiohttp_for_its_client(closed_port: int) -> None:
    argv = ["check", "--json", "--quiet", "--control", f"http://127.0.0.1:{closed_port}/c",
            "--resolver", f"127.0.0.1:{closed_port}", "--timeout", "0.5", "a.example"]  # fmt: skip
    r = probe_process(RUN_CHECK, *argv)
    found = json.loads(r.stderr.strip().splitlines()[-1])
    assert "aiohttp" in found["modules"]
    m = Measurement.from_json(r.stdout.splitlines()[0])
    assert m.control is not None and m.control.failure == "connection_refused"


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUN_CHECK_LOOP = """
import asyncio, json, sys
from probe import cli, runner
seen = []
judge = runner.Runner.judge
async def spy(self, *a, **kw):
    seen.append(type(asyncio.get_running_loop()).__module__)
    return await judge(self, *a, **kw)
runner.Runner.judge = spy
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "loops": sorted(set(seen))}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("loop", "module"),
    [("asyncio", "asyncio.unix_events"), ("auto", "uvloop"), ("uvloop", "uvloop")],
)
def test_the_loop_key_picks_the_event_loop(closed_port: int, loop: str, module: str) -> None:
    argv = ["check", "--json", "--quiet", "--no-control", "--resolver",
            f"127.0.0.1:{closed_port}", "--timeout", "0.5", "a.example"]  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-c", RUN_CHECK_LOOP, *argv], capture_output=True, text=True,
        timeout=60, cwd=ROOT, env={**os.environ, "SURBLOCAGE_PROBE_LOOP": loop},
    )  # fmt: skip
    found = json.loads(r.stderr.strip().splitlines()[-1])
    assert found == {"code": 0, "loops": [module]}, r.stderr
    m = Measurement.from_json(r.stdout.splitlines()[0])
    assert m.dns[0].failure == "connection_refused"


def test_an_unknown_loop_is_a_usage_error(closed_port: int) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "probe", "check", "--no-control", "a.example"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "SURBLOCAGE_PROBE_LOOP": "trio"},
    )  # fmt: skip
    assert r.returncode == 2
    assert "SURBLOCAGE_PROBE_LOOP" in r.stderr and "asyncio, auto, uvloop" in r.stderr


RUN_CHECK_COUNTING = """
import gc, json, sys
from probe import cli, output
from probe.record import Measurement
alive = []
call = output.InOrder.__call__
def counting(self, i, m):
    call(self, i, m)
    alive.append(sum(isinstance(o, Measurement) for o in gc.get_objects()))
output.InOrder.__call__ = counting
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "alive": alive}), file=sys.stderr)
"""


def test_check_json_holds_only_the_records_not_yet_printed(closed_port: int) -> None:
    names = [f"t{i:03d}.example" for i in range(60)]
    argv = ["check", "--json", "--quiet", "--no-control", "--concurrency", "4", "--resolver",
            f"127.0.0.1:{closed_port}", "--timeout", "0.5", *names]  # fmt: skip
    r = probe_process(RUN_CHECK_COUNTING, *argv)
    found = json.loads(r.stderr.strip().splitlines()[-1])
    assert found["code"] == 0
    assert len(found["alive"]) == 60
    # after each record: those finished ahead of a slower one and the one being handed on, at
    # most the targets in flight, never the cycle's 60
    assert max(found["alive"]) <= 8
    assert len(r.stdout.splitlines()) == 60
