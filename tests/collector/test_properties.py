"""Properties of the collector's input: a submitted body becomes rows or one BatchError, and any
configuration file a config or one ConfigError, never another exception."""

from __future__ import annotations

import datetime
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import config, diagnostics, flag_diagnostics, ingest
from collector.store.probes import ProbeRow
from probe import fingerprints
from probe.settings import ConfigError
from tests.collector.harness import ROOT, record
from tests.collector.test_diagnostics import DIAGNOSIS
from tests.support.hostile import JSON, YAML, loaded_or_refused, mutated
from tests.test_properties import config_files

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROBE = ProbeRow("p-0123456789abcdef0123", "x", datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC))
# the second record carries diagnostics (tests/collector/test_diagnostics.py), so that mutations
# reach into them too
BATCH = {"records": [record(1), {**record(2), "diagnostics": DIAGNOSIS}]}
COLLECTOR_CONFIG = yaml.safe_load((ROOT / "configs" / "collector.example.yaml").read_text())


def _bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


BODIES = (
    st.builds(_bytes, mutated(BATCH) | JSON)
    | st.binary(max_size=40)
    | st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 3000))
)


@BOUNDED
@given(BODIES)
def test_a_body_becomes_rows_or_a_batch_error(raw: bytes) -> None:
    try:
        rows = ingest.prepare_batch(raw, 20, PROBE, None, fingerprints.default_fingerprints())
    except ingest.BatchError as e:
        assert 400 <= e.status < 500 and e.message
    else:
        assert rows and all(r.probe_id == PROBE.id for r in rows)


@BOUNDED
@given(mutated(BATCH["records"][0]) | JSON)
def test_the_fast_and_the_plain_record_parsers_agree(value: Any) -> None:
    outcomes = []
    for parse in (ingest.parse_record, ingest.Measurement.from_dict):
        try:
            outcomes.append(parse(value))
        except ingest.MalformedRecord:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


@BOUNDED
@given(mutated(DIAGNOSIS) | mutated({"skipped": "budget"}) | JSON)
def test_diagnostics_pass_or_are_refused_naming_the_field(value: Any) -> None:
    try:
        diagnostics.check(value)
    except ingest.MalformedRecord as e:
        assert str(e).startswith("diagnostics")
        assert not diagnostics.is_valid(value)
    else:  # what passes is counted without surprise
        d = flag_diagnostics.Diagnosed("p", datetime.datetime.now(datetime.UTC), value or {})
        assert flag_diagnostics.aggregate([d] if value else [])["probes"] in (0, 1)


@BOUNDED
@given(config_files(list(config.KEYS), COLLECTOR_CONFIG))
def test_the_collector_config_loads_or_says_why_not(data: Any) -> None:
    cfg = loaded_or_refused(data, lambda p: config.load_config(str(p), environ={}), ConfigError)
    assert cfg is None or isinstance(cfg, config.CollectorConfig)


@BOUNDED
@given(st.dictionaries(st.sampled_from(list(config.KEYS)), YAML, max_size=4))
def test_collector_overrides_load_or_say_why_not(overrides: dict[str, Any]) -> None:
    try:
        config.load_config(None, overrides, environ={})
    except ConfigError as e:
        assert str(e)
