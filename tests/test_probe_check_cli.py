"""The probe's `check` command: bad input exits 2 with one line naming what is wrong; output."""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def probe(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *argv], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("files", "argv", "names"),
    [
        ({}, ["check", "--bogus", "a.fr"], "--bogus"),
        ({}, ["check", "ftp://a.fr/"], "ftp://a.fr/"),
        ({}, ["check", "http://[::1/"], "http://[::1/"),
        ({}, ["check", "--timeout", "abc", "a.fr"], "--timeout"),
        ({}, ["check"], "URL_OR_DOMAIN"),
        ({"p.yaml": "dns: [unclosed\n"}, ["check", "--config", "p.yaml", "a.fr"], "p.yaml"),
        ({"p.yaml": "colour: blue\n"}, ["check", "--config", "p.yaml", "a.fr"], "colour"),
        (
            {"p.yaml": "timeouts:\n  dns: -1\n"},
            ["check", "--config", "p.yaml", "a.fr"],
            "timeouts.dns",
        ),
        ({}, ["check", "--config", "missing.yaml", "a.fr"], "missing.yaml"),
        ({"w.yaml": "services: [{id: x}]\n"}, ["check", "--watchlist", "w.yaml"], "services[0]"),
        ({}, ["check", "--fingerprints", "nope.yaml", "a.fr"], "nope.yaml"),
        ({}, ["check", "--resolver", "1.1.1.1", "--resolver", "dns.google", "a.fr"], "dns.google"),
        ({}, ["check", "--resolver", "https://x.test/q?dns=1", "a.fr"], "dns.resolvers[0]"),
        ({}, ["check", "--resolver", "bad name=1.1.1.1", "a.fr"], "'bad name'"),
        ({}, [], "COMMAND"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: pathlib.Path, files: dict[str, str], argv: list[str], names: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = [str(tmp_path / a) if a in files or a.endswith((".yaml", ".csv")) else a for a in argv]
    r = probe(*argv)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    if argv:
        assert len(lines) == 1, r.stderr
        assert names in lines[0]
    assert "Traceback" not in r.stderr


def test_help_lists_the_measuring_options() -> None:
    r = probe("check", "--help")
    assert r.returncode == 0
    for option in (
        "--resolver",
        "--control",
        "--no-control",
        "--ca-file",
        "--allow-network",
        "--timeout",
        "--concurrency",
        "--asn",
        "--network",
        "--state-dir",
        "--json",
    ):
        assert option in r.stdout


def test_json_lines_in_input_order_with_a_dead_resolver() -> None:
    resolver = f"127.0.0.1:{closed_udp_port()}"
    r = probe(
        "check",
        "--json",
        "--no-control",
        "--quiet",
        "--resolver",
        resolver,
        "--timeout",
        "1",
        "b.example.fr",
        "https://a.example.fr/x",
        "--asn",
        "3215",
        "--network",
        "Orange",
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [m["target"]["url"] for m in records] == [
        "https://b.example.fr/",
        "https://a.example.fr/x",
    ]
    for m in records:
        assert m["probe"]["resolver"] == resolver
        assert (m["probe"]["asn"], m["probe"]["network"]) == (3215, "Orange")
        assert {d["failure"] for d in m["dns"]} == {"connection_refused"}
        assert m["verdict"] == {
            "status": "inconclusive",
            "method": None,
            "detail": "no_control",
            "blockpage": None,
        }


def test_table_by_default() -> None:
    r = probe(
        "check",
        "--no-control",
        "--quiet",
        "--resolver",
        f"127.0.0.1:{closed_udp_port()}",
        "--timeout",
        "1",
        "a.example.fr",
    )
    assert r.returncode == 0, r.stderr
    head, row = r.stdout.splitlines()
    assert head.split() == ["target", "dns", "tcp", "tls", "http", "verdict"]
    assert row.split() == [
        "https://a.example.fr/",
        "connection_refused",
        "-",
        "-",
        "-",
        "inconclusive/no_control",
    ]
    assert "\033[" not in r.stdout  # no colour when not a terminal


def test_without_a_control_one_line_says_the_verdicts_need_one() -> None:
    argv = ["--resolver", f"127.0.0.1:{closed_udp_port()}", "--timeout", "1", "a.example.fr"]
    r = probe("check", "--no-control", *argv)
    assert r.returncode == 0, r.stderr
    hints = [line for line in r.stderr.splitlines() if "without a control" in line]
    assert len(hints) == 1, r.stderr
    assert "--control URL" in hints[0] and "collector.url" in hints[0]
    quiet = probe("check", "--no-control", "--quiet", *argv)
    assert "without a control" not in quiet.stderr


def test_a_control_that_answers_404_is_asked_once_and_named() -> None:
    asked: list[str] = []

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": "not found"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        control = f"http://127.0.0.1:{server.server_address[1]}/api/v1/control"
        resolver = f"127.0.0.1:{closed_udp_port()}"
        argv = ["--resolver", resolver, "--timeout", "1", "--concurrency", "1", "a.fr", "b.fr"]
        r = probe("check", "--json", "--quiet", "--control", control, *argv)
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stderr
    assert asked == ["/api/v1/control"]
    assert "answered HTTP 404 (no control there); measured without a control" in r.stderr
    for m in map(json.loads, r.stdout.splitlines()):
        assert "HTTP 404" in m["control"]["failure"]


def test_the_table_shows_the_other_resolver_paths() -> None:
    dead = f"127.0.0.1:{closed_udp_port()}"
    r = probe(
        "check", "--no-control", "--quiet", "--timeout", "1", "--resolver", f"isp={dead}",
        "--resolver", f"pub={dead}", "a.example.fr",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    head, row = r.stdout.splitlines()
    assert head.split()[-4:] == ["verdict", "other", "resolver", "paths"]
    assert row.split()[-2:] == ["inconclusive/no_control", "pub=inconclusive/no_control"]
