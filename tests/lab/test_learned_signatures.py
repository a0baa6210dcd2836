"""Learned block signatures in the lab: two probes of one ISP teach the collector how its
resolver answers names blocked by order, and `check --no-control` then decides with it.

ISP "a" (two probes) answers 127.0.0.1 for two positive controls of the collector's watchlist
(``dns_only``) and for a third name outside it; the internet's authoritative gives the real
address, which the collector's control resolves. The probes declare a network no packaged
signature names (AS64500), so that without the learned signature a 127.0.0.1 answer decides
nothing without a control. A lab of its own: the shared one's resolvers answer 127.0.0.1 for
one name only.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.lab.plan import MISC, blocked, on
from tests.lab.technique import Check, IspSpec, Technique
from tests.lab.topology import Lab, default_prefix, unusable_reason

BIN = pathlib.Path(sys.executable).parent
CONTROLS = ("lrn-one.example", "lrn-two.example")
TARGET = "lrn-target.example"  # blocked by the same order, but no positive control
NETWORK = ["--asn", "64500", "--network", "LabISP"]
LEARNED = Technique(
    "learned_loopback",
    tuple(Check(f"https://{n}/", "dns", None) for n in (*CONTROLS, TARGET)),
    blocked("dns", "bogon", "the ISP's resolver answers 127.0.0.1 for names under order"),
    zone=on(MISC, *CONTROLS, TARGET),
    isp_dns=dict.fromkeys((*CONTROLS, TARGET), "127.0.0.1"),
)


@pytest.fixture(scope="module")
def learning_lab() -> Iterator[Lab]:
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    # a prefix of its own: the default one is the session lab's, which up() would tear down
    built = Lab(
        prefix=f"{default_prefix()}s", isps=[IspSpec("a", probes=2)], techniques=(LEARNED,)
    ).up()
    try:
        yield built
    finally:
        built.down()


@pytest.fixture(scope="module")
def collector(learning_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The collector in the internet ns: control, store, and the watchlist of positive
    controls."""
    lab = learning_lab
    work = tmp_path_factory.mktemp("collector")
    services = [
        {"id": n.split(".")[0], "name": n, "category": "control", "urls": [f"https://{n}/"],
         "dns_only": True} for n in CONTROLS
    ]  # fmt: skip
    (work / "watchlist.yaml").write_text(yaml.safe_dump({"services": services}))
    os.chmod(work, 0o755)
    argv = [
        str(BIN / "surblocage-collector"), "serve", "--db", f"sqlite:///{work}/c.db",
        "--listen", f"{lab.collector_addr}:{lab.collector_port}", "--watchlist",
        str(work / "watchlist.yaml"), "--resolver", lab.public_resolver, "--ca-file",
        lab.ca_file, "--allow-network", lab.allow_network,
    ]  # fmt: skip
    # the two probes share a /24: counted as two sources, as on two lines
    env = {
        **os.environ, "SURBLOCAGE_COLLECTOR_CENSUS_ENABLED": "false",
        "SURBLOCAGE_COLLECTOR_FLAGS_SOURCE_PREFIX_V4": "32",
    }  # fmt: skip
    running = lab.spawn(
        "internet", argv, "collector", (lab.collector_addr, lab.collector_port), env=env
    )
    yield lab.collector_url
    lab.stop(running)


def run_once(lab: Lab, probe: str, state: pathlib.Path) -> None:
    argv = [
        str(BIN / "surblocage-probe"), "run", "--once", "--quiet", "--no-sweep", "--collector",
        lab.collector_url, "--state-dir", str(state), "--resolver", lab.resolver("a"),
        "--ca-file", lab.ca_file, "--allow-network", lab.allow_network, "--timeout", "2",
        *NETWORK,
    ]  # fmt: skip
    env = {**os.environ, "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true"}
    done = lab.exec(probe, argv, timeout=120, env=env)
    assert done.returncode == 0, done.stderr


def check(lab: Lab, state: pathlib.Path) -> dict[str, Any]:
    argv = [
        str(BIN / "surblocage-probe"), "check", "--json", "--quiet", "--no-control",
        "--state-dir", str(state), "--resolver", lab.resolver("a"), "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network, "--timeout", "2", *NETWORK, f"https://{TARGET}/",
    ]  # fmt: skip
    done = lab.exec("probe_a1", argv, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    return record


def test_two_probes_teach_a_signature_that_check_then_decides_with(
    learning_lab: Lab, collector: str, tmp_path: pathlib.Path
) -> None:
    lab = learning_lab
    os.chmod(tmp_path, 0o755)
    states = {p: tmp_path / p for p in ("probe_a1", "probe_a2")}
    before = check(lab, states["probe_a1"])  # no signature kept yet
    assert before["verdict"]["status"] == "inconclusive", json.dumps(before)[:2000]

    for probe, state in states.items():
        run_once(lab, probe, state)
    url = f"{lab.collector_url}/api/v1/signatures"
    (sig,) = lab.run("internet", _get_json, url)["signatures"]
    assert (sig["asn"], sig["network"], sig["resolver"], sig["kind"], sig["value"]) == (
        64500, "LabISP", lab.resolver("a"), "address", "127.0.0.1",
    )  # fmt: skip
    assert (sig["probes"], sig["controls"], len(sig["evidence"])) == (2, 2, 4)

    # the first probe fetched before the second had measured: its next cycle brings it
    run_once(lab, "probe_a1", states["probe_a1"])
    after = check(lab, states["probe_a1"])
    v = after["verdict"]
    assert (v["status"], v["method"], v["detail"], v["blockpage"]) == (
        "blocked", "dns", "bogon", f"learned:{sig['id']}",
    ), json.dumps(after)[:2000]  # fmt: skip


async def _get_json(url: str) -> Any:
    import asyncio

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    return await asyncio.to_thread(get)
