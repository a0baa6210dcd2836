"""Verdicts in the lab: every planted technique gets its expected verdict, with a live control.

A real collector runs in the "internet" namespace as the control vantage; real probe processes
run `check --json` behind ISP "a" (which plants every technique) and ISP "b" (which plants only a
few: the others must come out `ok` there). The expectations live in tests/lab/plan.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from probe import fingerprints, verdict
from probe.record import Measurement
from tests.lab.plan import TECHNIQUES
from tests.lab.technique import Technique
from tests.lab.topology import FINGERPRINTS, Lab

COLLECTOR = str(pathlib.Path(sys.executable).with_name("surblocage-collector"))
# the lab's probes run `check` without registering: the lab's control serves anyone
PUBLIC_CONTROL = {**os.environ, "SURBLOCAGE_COLLECTOR_CONTROL_PUBLIC": "true"}


@pytest.fixture(scope="module")
def control(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A collector in the internet namespace, its control resolving through the authoritative."""
    db = tmp_path_factory.mktemp("collector") / "c.db"
    running = lab.spawn("internet", [
        COLLECTOR, "serve", "--listen", f"{lab.collector_addr}:{lab.collector_port}",
        "--db", f"sqlite:///{db}", "--resolver", lab.auth_dns, "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network,
    ], name="collector", ready_tcp=(lab.collector_addr, lab.collector_port),
        env=PUBLIC_CONTROL)  # fmt: skip
    yield lab.control_url
    lab.stop(running)


def run_check(
    lab: Lab, role: str, techniques: list[Technique], control: str, letter: str
) -> dict[str, dict[str, Any]]:
    """Run one probe process over the techniques' URLs; return its records by URL."""
    first = techniques[0]
    argv = [a for a in lab.probe_argv(first, letter, control) if a not in first.urls]
    keys = [(t.name, u) for t in techniques for u in t.urls]
    urls = [u for _, u in keys]
    result = lab.exec(role, [*argv, "--timeout", "4", "--quiet", *urls], timeout=180)
    assert result.returncode == 0, result.stderr
    return dict(zip(keys, map(json.loads, result.stdout.splitlines()), strict=True))


def groups() -> list[list[Technique]]:
    """Techniques that can share one probe run (same resolver, same kind of control)."""
    out: dict[tuple[str, str], list[Technique]] = {}
    for t in TECHNIQUES:
        out.setdefault((t.resolver, t.control), []).append(t)
    return list(out.values())


@pytest.fixture(scope="module")
def verdicts(lab: Lab, control: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Records by (ISP letter, technique, URL), for ISP a (everything planted) and b (a few)."""
    out = {}
    for letter in ("a", "b"):
        for group in groups():
            for (name, url), r in run_check(lab, f"probe_{letter}", group, control, letter).items():
                out[(letter, name, url)] = r
    return out


@pytest.mark.parametrize("letter", ["a", "b"])
@pytest.mark.parametrize("technique", TECHNIQUES, ids=[t.name for t in TECHNIQUES])
def test_technique_gets_its_verdict(
    lab: Lab,
    verdicts: dict[tuple[str, str, str], dict[str, Any]],
    technique: Technique,
    letter: str,
) -> None:
    expect = lab.expected(technique, letter)
    for url in technique.urls:
        got = verdicts[(letter, technique.name, url)]["verdict"]
        assert expect.matches(got), f"{url}: expected {expect}, got {got}"


def test_collector_recomputes_the_same_verdict(
    verdicts: dict[tuple[str, str, str], dict[str, Any]],
) -> None:
    """The stored record alone gives the collector the probe's verdict (same fingerprints)."""
    fps = fingerprints.default_fingerprints().merge(fingerprints.load_fingerprints(FINGERPRINTS))
    for key, record in verdicts.items():
        m = Measurement.from_dict(record)
        assert verdict.decide(m, None, fps) == m.verdict, key
