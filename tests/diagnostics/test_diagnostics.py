"""The diagnostics without the network: record shape, skips, budget and pace, interval, parsing.

Sending and capturing crafted packets is proven in the lab (tests/lab/test_diagnostics.py).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from probe import config, fingerprints, verdict
from probe.diagnostics import Diagnoser, Settings, capture, location
from probe.diagnostics.memory import Memory
from probe.diagnostics.pacing import Budget
from probe.flow import Flow, FlowOptions
from probe.record import (
    Diagnostics,
    DNSInjection,
    DNSResult,
    InjectedAnswer,
    Location,
    MalformedRecord,
    Measurement,
    ProbeInfo,
    ResetOrigin,
    Target,
    Verdict,
)
from probe.runner import Runner
from probe.steps.tcp import TCPSpec
from tests.fake_steps import fake_steps

TARGET = Target("svc", "https://blocked.test/", "blocked.test", "general")


def record(status: str = "blocked", method: str | None = "dns") -> Measurement:
    return Measurement(
        id="6f1c7c57-3f6c-4f53-9a3c-1c3f3d1e0b7a", probe=ProbeInfo(), target=TARGET,
        started_at="2026-12-06T07:00:00.000Z", duration_ms=1.0,
        dns=[DNSResult(resolver="192.0.2.53", qtype="A", failure=None, ms=1.0,
                       answers=["127.0.0.1"])],
        verdict=Verdict(status, method if status == "blocked" else None),
    )  # fmt: skip


def test_scapy_is_not_imported_by_the_cli_nor_a_check_of_an_ok_target() -> None:
    code = (
        "import sys\n"
        "from probe import cli\n"
        "assert 'scapy' not in sys.modules, 'cli'\n"
        "cli.main(['check', '--json', '--quiet', '--no-control', '--resolver', '127.0.0.1:9',"
        " '--allow-network', '127.0.0.0/8', '--timeout', '0.2', 'x.test'])\n"
        "print('scapy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    *records, last = out.stdout.splitlines()
    assert last == "False"
    assert json.loads(records[0])["diagnostics"] is None


def test_skipped_is_one_key_on_the_wire_and_round_trips() -> None:
    m = record()
    skipped = Measurement.from_dict({**m.to_dict(), "diagnostics": {"skipped": "no_raw_socket"}})
    assert skipped.to_dict()["diagnostics"] == {"skipped": "no_raw_socket"}
    assert m.to_dict()["diagnostics"] is None


def test_a_full_diagnosis_round_trips() -> None:
    d = Diagnostics(
        dns_injection=DNSInjection(
            "on_path", "192.0.2.80", [InjectedAnswer("192.0.2.80", 60, 1, "NOERROR", ["10.0.0.9"])]
        ),
        reset_origin=ResetOrigin("path", 61, 64, 0, 0),
        location=Location("found", "tls", 2, "192.0.2.1", evidence="ttl 3: reset"),
        packets=40, malformed=1, duration_ms=1200,
    )  # fmt: skip
    wire = json.loads(json.dumps({**record().to_dict(), "diagnostics": d.wire()}))
    assert set(wire["diagnostics"]) == {
        "dns_injection", "reset_origin", "location", "packets", "malformed", "duration_ms",
    }  # fmt: skip
    assert Measurement.from_dict(wire).diagnostics == d


@pytest.mark.parametrize(
    ("diagnostics", "message"),
    [
        ({"skipped": "bored"}, "diagnostics.skipped: 'bored' is not one of"),
        ({"reset_origin": {"result": "box"}}, "diagnostics.reset_origin.result"),
        ({"reset_origin": {"result": "path", "rst_ttl": 300}}, "rst_ttl: 300 is not in 0..255"),
        ({"location": {"result": "found", "trigger": "tls", "hop": 65}}, "hop: 65 is not in"),
        ({"location": {"result": "found", "trigger": "tls", "evidence": "x" * 201}}, "evidence"),
        ({"dns_injection": {"result": "none", "queried": "nope"}}, "queried: 'nope' is not an IP"),
        ({"dns_injection": {"result": "on_path", "queried": "192.0.2.1",
          "answers": [{"source": "192.0.2.1", "ttl": 1, "ip_id": 70000, "rcode": "NOERROR"}]}},
         "ip_id: 70000"),
        ({"packets": -1}, "packets: -1 is not in"),
        ({"malformed": "3"}, "malformed: expected an integer"),
    ],
)  # fmt: skip
def test_a_bad_diagnosis_is_a_malformed_record(diagnostics: object, message: str) -> None:
    with pytest.raises(MalformedRecord, match="diagnostics") as e:
        Measurement.from_dict({**record().to_dict(), "diagnostics": diagnostics})
    assert message in str(e.value)


async def test_skips_say_why() -> None:
    off = Diagnoser(Settings(), off="no_raw_socket")
    assert (await off.diagnose(record())).skipped == "no_raw_socket"
    disabled = Diagnoser(Settings(enabled=False), off=None)
    assert (await disabled.diagnose(record())).skipped == "disabled"
    spent = Diagnoser(Settings(budget=5), off="")
    spent.off = None  # as if raw sockets were there: the budget decides first
    assert (await spent.diagnose(record())).skipped == "budget"


async def test_a_diagnosis_sends_nothing_it_may_not(tmp_path: Path) -> None:
    """No silent address, a resolver on loopback: nothing to send, nothing sent, remembered."""
    d = Diagnoser(Settings(resolver="127.0.0.1", state_dir=tmp_path, interval_seconds=3600))
    d.off = None
    found = await d.diagnose(record())
    assert (found.dns_injection, found.reset_origin, found.location) == (None, None, None)
    assert found.packets == 0 and d.budget.spent == 0
    again = Diagnoser(Settings(state_dir=tmp_path, interval_seconds=3600))
    again.off = None
    assert (await again.diagnose(record())).skipped == "interval"


async def test_the_runner_diagnoses_blocked_records_only() -> None:
    async def dns(spec: object) -> DNSResult:
        return DNSResult(resolver="192.0.2.53", qtype=spec.qtype, failure=None, ms=1.0,  # type: ignore[attr-defined]
                         answers=["127.0.0.1"] if spec.name == "blocked.test" else ["192.0.2.7"])  # type: ignore[attr-defined]  # fmt: skip

    async def refuse(spec: TCPSpec) -> object:
        from probe.record import TCPResult

        return TCPResult(ip=spec.ip, port=spec.port, failure="connection_refused", ms=1.0)

    steps = fake_steps(dns, refuse, refuse, refuse)
    flow = Flow(FlowOptions(resolver="192.0.2.53", qtypes=("A",)), steps)
    # Orange answers 127.0.0.1 for a blocked name: a fingerprint decides without a control
    runner = Runner(flow, ProbeInfo(asn=3215), None, fingerprints.default_fingerprints())
    runner.diagnoser = Diagnoser(Settings(), off="no_raw_socket")
    ok = Target("ok", "https://ok.test/", "ok.test", "general")
    blocked, other = await runner.run([TARGET, ok])
    assert blocked.verdict is not None and blocked.verdict.status == "blocked"
    assert blocked.diagnostics == Diagnostics(skipped="no_raw_socket")
    assert other.verdict is not None and other.verdict.status != "blocked"
    assert other.diagnostics is None
    assert verdict  # the verdict module judged both


async def test_the_budget_is_never_exceeded_and_the_pace_kept() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    b = Budget(10, pps=20, clock=lambda: now[0], sleep=sleep)
    assert b.reserve(8) and not b.reserve(3) and b.reserve(2) and not b.reserve(1)
    b.refund(5)
    assert b.left == 5 and b.spent == 5
    for _ in range(4):
        await b.pace(5)
    assert now[0] == pytest.approx(0.75)  # 20 packets at 20/s: the 4th batch starts at 0.75 s
    b.reset()
    assert b.left == 10


def test_the_interval_is_remembered_across_restarts(tmp_path: Path) -> None:
    t = [1000.0]
    m = Memory(tmp_path / "d.json", 60, clock=lambda: t[0])
    assert m.due("u")
    m.done("u")
    assert not Memory(tmp_path / "d.json", 60, clock=lambda: t[0]).due("u")
    t[0] += 61
    assert Memory(tmp_path / "d.json", 60, clock=lambda: t[0]).due("u")
    (tmp_path / "d.json").write_text("{not json")
    assert Memory(tmp_path / "d.json", 60).due("u")  # damaged: start again, no crash


def _ip(proto: int, payload: bytes, src: str = "192.0.2.9", ttl: int = 57) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 4321, 0, ttl, proto, 0,
        socket.inet_aton(src), socket.inet_aton("192.0.2.2"),
    )  # fmt: skip
    return header + payload


def test_parse_keeps_ttl_ip_id_and_the_quote_and_refuses_garbage() -> None:
    tcp = struct.pack("!HHIIBBHHH", 443, 40000, 1, 0, 0x50, 0x14, 0, 0, 0)
    p = capture.parse(_ip(socket.IPPROTO_TCP, tcp))
    assert p is not None and (p.ttl, p.ip_id, p.sport, p.tcp_flags) == (57, 4321, 443, 0x14)
    quoted = _ip(socket.IPPROTO_UDP, struct.pack("!HHHH", 40001, 53, 8, 0), src="192.0.2.2")
    icmp = struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    te = capture.parse(_ip(socket.IPPROTO_ICMP, icmp, src="192.0.2.1"))
    assert te is not None and te.quoted == (socket.IPPROTO_UDP, 40001, "192.0.2.2")
    assert te.source == "192.0.2.1"
    assert capture.parse(b"\x45\x00") is None
    assert capture.parse(b"\x60" + b"\x00" * 39) is None  # not IPv4
    bare = struct.pack("!BBHI", 11, 0, 0, 0)  # a time exceeded quoting nothing
    assert capture.parse(_ip(socket.IPPROTO_ICMP, bare)) is None


@pytest.mark.parametrize(
    ("blocked", "control", "hop", "address"),
    [
        # a filter in hop 2's forwarding: ttl 3 is reset, the control dies at hop 3
        (location.Echo("reset", None), location.Echo("silent", "10.0.3.1"), 2, "10.0.2.1"),
        # a tap at hop 3 answers and hop 3 says time exceeded as well
        (location.Echo("answer", "10.0.3.1"), location.Echo("silent", "10.0.3.1"), 3, "10.0.3.1"),
        # a drop: nothing at all for the blocked name
        (location.Echo("silent", None), location.Echo("silent", "10.0.3.1"), 2, "10.0.2.1"),
    ],
)  # fmt: skip
def test_the_hop_reported(
    blocked: location.Echo, control: location.Echo, hop: int, address: str
) -> None:
    assert location._differs(blocked, control)
    trigger = location.Trigger("tls", "192.0.2.80", 443)
    found = location._found(trigger, 3, blocked, control, {1: "10.0.1.1", 2: "10.0.2.1"})
    assert (found.result, found.hop, found.address) == ("found", hop, address)
    assert len(found.evidence) <= 200


def test_alike_echoes_differ_not() -> None:
    icmp = location.Echo("silent", "10.0.3.1")
    assert not location._differs(icmp, icmp)
    assert not location._differs(location.Echo("answer", None), location.Echo("answer", None))
    assert location._differs(location.Echo("reset", None), location.Echo("acked", None))


def test_the_config_keys_are_checked_and_reach_the_settings(tmp_path: Path) -> None:
    file = tmp_path / "probe.yaml"
    file.write_text(
        "collector: {url: 'https://192.0.2.10/'}\n"
        "diagnostics: {interval: 60, budget: 300, pps: 5, max_hops: 12}\n"
    )
    cfg = config.load_config(file, environ={})
    s = Settings.of(cfg, "192.0.2.53", 53, "www.example.com", keep_interval=True)
    assert (s.interval_seconds, s.budget, s.pps, s.max_hops) == (60, 300, 5, 12)
    assert s.silent_address == "192.0.2.10"  # the collector's address runs no resolver
    assert s.state_dir == cfg.state_dir
    assert Settings.of(cfg, None, 53, "x", keep_interval=False).state_dir is None
    for bad, why in (
        ("pps: 0", "diagnostics.pps: must be a number, 0.1 or more"),
        ("max_hops: 65", "diagnostics.max_hops: must be a whole number from 1 to 64"),
        ("silent_address: resolver.example", "diagnostics.silent_address: must be an IP"),
        ("colour: red", "diagnostics.colour: unknown key"),
    ):
        file.write_text(f"diagnostics: {{{bad}}}\n")
        with pytest.raises(config.ConfigError, match=why):
            config.load_config(file, environ={})
    disabled = config.load_config(None, {"diagnostics.enabled": False}, environ={})
    assert Diagnoser(Settings.of(disabled, None, 53, "x", False)).off == "disabled"
