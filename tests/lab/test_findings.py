"""Findings in the lab: flags and collateral across three ISPs' probes, and a real Prometheus alert.

Three ISPs, two probes each, every probe a real `surblocage-probe run --once` process submitting
to a real collector (its ASN database maps each ISP's LAN to an AS, as MaxMind would):
- "Orange" (a) answers NXDOMAIN for dns-nx.example (a DNS block);
- "Free" (b) drops the shared address 10.200.3.15 behind which legal-one and legal-two live
  (an address block: collateral);
- "SFR" (c) resets the ClientHello naming sni-rst.example (an SNI block);
- down.example listens nowhere (an outage for everybody, the control included);
- probe a2 alone gets a reset from ip-rst.example during the first cycle (a transient failure
  that its peer a1 contradicts).
Exactly the expected flags and collateral rows must open, and nothing else; when the SNI block is
lifted its flag closes within two cycles. A real Prometheus scrapes the collector with the
project's rules, and the blocked-service alert fires (the test copy of the rules shortens every
`for:` and group `interval:` to 1s so that the test does not wait five minutes; the
expressions are unchanged).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.lab import lab_collector
from tests.lab.technique import IspSpec
from tests.lab.topology import Lab, default_prefix, unusable_reason

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
NETWORKS = {"a": (3215, "Orange"), "b": (12322, "Free"), "c": (15557, "SFR")}
ROSTER = (
    IspSpec("a", probes=2, techniques=("dns_nxdomain",)),
    IspSpec("b", probes=2, techniques=("shared_blocked_address",)),
    IspSpec("c", probes=2, techniques=("sni_reset",)),
)
WATCHLIST = {
    "dns-nx": ("https://dns-nx.example/", "iptv_legal"),
    "legal-one": ("https://legal-one.example/", "vod"),
    "legal-two": ("https://legal-two.example/", "music"),
    "sni-rst": ("https://sni-rst.example/", "sports_legal"),
    "down": ("https://down.example/", "general"),
    "ip-rst": ("https://ip-rst.example/", "general"),
    "ok": ("https://ok.example/", "control"),
}
PROMETHEUS_PORT = 19090


def write_asn_database(lab: Lab, path: pathlib.Path) -> None:
    lab_collector.write_asn_database(
        path, (([lab.isp(letter).lan], network) for letter, network in NETWORKS.items())
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three-ISP lab, a collector with an ASN database, and Prometheus with our rules."""
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("findings")
    with Lab(prefix=f"{default_prefix()}f", isps=ROSTER) as lab:  # not the session lab's
        lab.up()
        write_asn_database(lab, tmp / "asn.mmdb")
        lab_collector.start_collector(lab, tmp, WATCHLIST, tmp / "asn.mmdb")
        start_prometheus(lab, tmp)
        yield {"lab": lab, "tmp": tmp}


def _shorten(line: str) -> str:
    """Shorten a rule group's `interval:` and an alert's `for:` to one second (test time)."""
    key = line.strip().split(":")[0]
    return line.split(key)[0] + f"{key}: 1s" if key in ("for", "interval") else line


def start_prometheus(lab: Lab, tmp: pathlib.Path) -> None:
    rules = (ROOT / "deploy" / "prometheus" / "surblocage.rules.yml").read_text()
    lines = [_shorten(ln) for ln in rules.splitlines()]
    (tmp / "rules.yml").write_text("\n".join(lines) + "\n")
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "surblocage",
                        "static_configs": [
                            {"targets": [f"{lab.collector_addr}:{lab.collector_port}"]}
                        ],
                    }
                ],
            }
        )
    )
    lab.spawn("internet", [
        "prometheus", f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
    ], name="prometheus", ready_tcp=("127.0.0.1", PROMETHEUS_PORT), timeout=30)  # fmt: skip


def get(lab: Lab, url: str) -> Any:
    """GET a JSON document from inside the internet namespace."""
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
    r = lab.exec("internet", [sys.executable, "-c", code, url])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cycle(world: dict[str, Any]) -> None:
    """Every probe of every ISP runs one cycle at once and submits it."""
    lab: Lab = world["lab"]

    def one(letter: str, n: int) -> None:
        role = f"probe_{letter}{n}"
        argv = [str(BIN / "surblocage-probe"), "run", "--once", "--quiet",
                "--collector", lab.collector_url, "--state-dir", str(world["tmp"] / role),
                "--resolver", lab.resolver(letter), "--ca-file", lab.ca_file,
                "--allow-network", lab.allow_network, "--timeout", "3"]  # fmt: skip
        # the lab's collector speaks http on a routed (non-loopback) address
        env = {**os.environ, "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true"}
        r = lab.exec(role, argv, timeout=120, env=env)
        assert r.returncode == 0, f"{role}: {r.stderr}"

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(one, x, n) for x in "abc" for n in (1, 2)]
        for job in jobs:
            job.result()


def flags(lab: Lab, state: str) -> set[tuple[str, str, str]]:
    found = get(lab, f"{lab.collector_url}/api/v1/flags?state={state}")["flags"]
    return {(f["network"], f["service"], f["method"]) for f in found}


def router_rule(lab: Lab, letter: str, action: str, rule: list[str]) -> None:
    r = lab.exec(f"router_{letter}", ["iptables", action, "FORWARD", *rule])
    assert r.returncode == 0, r.stderr


def lift_sni_block(lab: Lab) -> None:
    listing = lab.exec("router_c", ["iptables", "-S", "FORWARD"]).stdout.splitlines()
    planted = [shlex.split(ln)[2:] for ln in listing if "sni-rst.example" in ln]
    assert planted, listing
    for rule in planted:
        router_rule(lab, "c", "-D", rule)


def firing(lab: Lab, alertname: str) -> list[dict[str, str]]:
    alerts = get(lab, f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/alerts")["data"]["alerts"]
    return [
        a["labels"]
        for a in alerts
        if a["labels"]["alertname"] == alertname and a["state"] == "firing"
    ]


EXPECTED_OPEN = {
    ("Orange", "dns-nx", "dns"),
    ("Free", "legal-one", "tcp_ip"),
    ("Free", "legal-two", "tcp_ip"),
    ("SFR", "sni-rst", "tls"),
}


def test_flags_collateral_and_alert_across_three_isps(world: dict[str, Any]) -> None:
    lab: Lab = world["lab"]
    transient = ["-s", lab.isp("a").probe(2), "-d", "10.200.3.12", "-p", "tcp", "-j", "REJECT",
                 "--reject-with", "tcp-reset"]  # fmt: skip
    router_rule(lab, "a", "-I", transient)
    cycle(world)
    router_rule(lab, "a", "-D", transient)

    assert flags(lab, "open") == EXPECTED_OPEN  # and nothing else: no outage, no transient
    rows = get(lab, f"{lab.collector_url}/api/v1/collateral")["addresses"]
    assert [(r["ip"], r["network"], r["asn"], r["services"]) for r in rows] == [
        ("10.200.3.15", "Free", 12322, ["legal-one", "legal-two"])
    ]
    measured = get(lab, f"{lab.collector_url}/api/v1/measurements?service=ip-rst&limit=10")
    verdicts = {m["probe"]["id"]: m["verdict"]["status"] for m in measured["measurements"]}
    assert sorted(verdicts.values()) == ["blocked", "ok", "ok", "ok", "ok", "ok"]

    deadline = time.monotonic() + 60
    alerted: set[tuple[str, str, str]] = set()
    while alerted != EXPECTED_OPEN and time.monotonic() < deadline:
        time.sleep(1)
        alerted = {
            (a["network"], a["service"], a["method"])
            for a in firing(lab, "SurblocageLegalServiceBlocked")
        }
    assert alerted == EXPECTED_OPEN

    lift_sni_block(lab)
    cycle(world)
    assert flags(lab, "open") == EXPECTED_OPEN - {("SFR", "sni-rst", "tls")}
    assert ("SFR", "sni-rst", "tls") in flags(lab, "closed")
