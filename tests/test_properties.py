"""Properties of the probe's loaders and of the verdict: total over hostile input.

Each loader turns any value into its result or its one error (MalformedRecord, ConfigError,
WatchlistError, FingerprintError), never another exception; the verdict function answers for
any record and control it is given.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import config, fingerprints, verdict, watchlist
from probe.record import MalformedRecord, Measurement, Verdict
from probe.settings import ConfigError
from tests.support import records
from tests.support.hostile import JSON, YAML, loaded_or_refused, mutated

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = pathlib.Path(__file__).resolve().parents[1]
RECORD = records.measurement(1).to_dict()
WATCHLIST = yaml.safe_load((ROOT / "configs" / "watchlist.yaml").read_text())
FINGERPRINTS = yaml.safe_load(fingerprints.PACKAGED_FINGERPRINTS.read_text())
PROBE_CONFIG = yaml.safe_load((ROOT / "configs" / "probe.example.yaml").read_text())


def parsed_or_malformed(value: Any) -> Measurement | None:
    """The Measurement ``value`` stands for, or None when it is refused as MalformedRecord."""
    try:
        return Measurement.from_dict(value)
    except MalformedRecord:
        return None


@BOUNDED
@given(JSON | mutated(RECORD))
def test_the_record_parser_gives_a_measurement_or_malformed_record(value: Any) -> None:
    m = parsed_or_malformed(value)
    assert m is None or Measurement.from_dict(m.to_dict()) == m


@BOUNDED
@given(mutated(RECORD), mutated(RECORD["control"]))
def test_the_verdict_is_total(value: Any, control: Any) -> None:
    m = parsed_or_malformed(value)
    if m is None:
        return
    other = parsed_or_malformed({**RECORD, "control": control})
    given_control = None if other is None else other.control
    for c in (given_control, None, m.control):
        v = verdict.decide(m, c, fingerprints.default_fingerprints())
        assert isinstance(v, Verdict)
        assert dataclasses.replace(v) == v  # a Verdict that passed its own checks


def _with_paths() -> dict[str, Any]:
    m = records.measurement(2)
    google = dataclasses.replace(m.dns[0], path="google", answers=[], failure="dns_refused_error")
    dns = [dataclasses.replace(m.dns[0], path="isp"), google]
    return dataclasses.replace(m, dns=dns, probe=dataclasses.replace(m.probe, path="isp")).to_dict()


RECORD_PATHS = _with_paths()


@BOUNDED
@given(mutated(RECORD_PATHS))
def test_the_paths_verdicts_are_total(value: Any) -> None:
    m = parsed_or_malformed(value)
    if m is None:
        return
    for c in (None, m.control):
        paths = verdict.decide_paths(m, c, fingerprints.default_fingerprints())
        assert {p.path for p in paths} == {r.path for r in m.dns if r.path is not None}
        assert all(dataclasses.replace(p) == p for p in paths)


def _dotted(keys: list[str], values: list[Any]) -> dict[str, Any]:
    """Nest dotted keys as a YAML file spells them ({"a": {"b": v}}); a clash keeps the first."""
    out: dict[str, Any] = {}
    for key, value in zip(keys, values, strict=False):
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node.setdefault(last, value)
    return out


def config_files(known: list[str], example: Any) -> st.SearchStrategy[Any]:
    """YAML mappings of known and unknown keys with any values, and the example file mutated."""
    names = st.lists(st.sampled_from(known) | st.text(min_size=1, max_size=8), max_size=6)
    built = st.builds(_dotted, names, st.lists(YAML, max_size=6))
    return built | mutated(example, YAML) | YAML | st.text(max_size=40)


@BOUNDED
@given(config_files(list(config.KEYS), PROBE_CONFIG))
def test_the_probe_config_loads_or_says_why_not(data: Any) -> None:
    cfg = loaded_or_refused(data, lambda p: config.load_config(p, environ={}), ConfigError)
    assert cfg is None or isinstance(cfg, config.ProbeConfig)


@BOUNDED
@given(mutated(WATCHLIST) | JSON | st.text(max_size=60))
def test_the_watchlist_loads_or_says_why_not(data: Any) -> None:
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    try:
        wl = watchlist.parse_watchlist(text, "hostile.yaml")
    except watchlist.WatchlistError as e:
        assert str(e).startswith("hostile.yaml: ")
    else:
        assert wl.services


@BOUNDED
@given(mutated(FINGERPRINTS) | JSON | st.text(max_size=60))
def test_the_fingerprints_load_or_say_why_not(data: Any) -> None:
    fps = loaded_or_refused(data, fingerprints.load_fingerprints, fingerprints.FingerprintError)
    assert fps is None or isinstance(fps, fingerprints.FingerprintSet)


@BOUNDED
@given(st.lists(st.lists(st.text(max_size=12), max_size=8), max_size=4))
def test_ooni_csv_fingerprints_load_or_say_why_not(rows: list[list[str]]) -> None:
    header = ",".join(fingerprints.OONI_COLUMNS)
    body = "\n".join(",".join(f'"{c}"' for c in (r or [""])) for r in rows)
    text = f"{header}\n{body}\n"
    load, error = fingerprints.load_fingerprints, fingerprints.FingerprintError
    fps = loaded_or_refused(text, load, error, suffix=".csv")
    assert fps is None or isinstance(fps, fingerprints.FingerprintSet)
