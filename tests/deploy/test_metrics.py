"""collector.metrics on a fresh registry: values, closed label sets, stale series, safe labels."""

import re
import subprocess

import prometheus_client
import pytest

from collector import metrics
from tests.deploy.conftest import need


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def m(registry: prometheus_client.CollectorRegistry) -> metrics.Metrics:
    return metrics.Metrics(registry, version="1.2.3")


def value(registry: prometheus_client.CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def series(registry: prometheus_client.CollectorRegistry, name: str) -> list[dict[str, str]]:
    """Return the label sets of every sample called `name`."""
    return [s.labels for f in registry.collect() for s in f.samples if s.name == name]


def test_record_ingested_counts_per_network_and_status(registry, m):
    m.record_ingested("Orange", "blocked", 3)
    m.record_ingested("Orange", "blocked")
    m.record_ingested("SFR", "ok", 2)
    total = "surblocage_records_ingested_total"
    assert (
        value(registry, total, network="Orange", declared_network="Orange", status="blocked") == 4
    )
    assert value(registry, total, network="SFR", declared_network="SFR", status="ok") == 2
    # a network's counters start at 0 for every status, so that rate() and increase() see them
    assert value(registry, total, network="SFR", declared_network="SFR", status="blocked") == 0


def test_every_rejection_reason_starts_at_zero_and_counts(registry, m):
    name = "surblocage_ingest_rejections_total"
    assert {s["reason"] for s in series(registry, name)} == set(metrics.REJECTION_REASONS)
    m.reject("store_unavailable")
    m.reject("store_unavailable")
    assert value(registry, name, reason="store_unavailable") == 2
    assert value(registry, name, reason="auth") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.reject("disk_full"),
        lambda m: m.record_ingested("Orange", "censored"),
        lambda m: m.flag_opened("Orange", "dpi"),
        lambda m: m.set_flags([("Orange", "mycanal", "piracy", "dns")]),
        lambda m: m.set_flags([("Orange", "mycanal", "vod", "http")]),
        lambda m: m.observe_store("vacuum", 0.1),
        lambda m: m.time_store("vacuum").__enter__(),
    ],
    ids=["reason", "status", "opened-method", "category", "flag-method", "operation", "timer"],
)
def test_value_outside_a_closed_set_raises_value_error(m, call):
    with pytest.raises(ValueError, match="is not one of"):
        call(m)


def test_unknown_reason_counts_nothing(registry, m):
    with pytest.raises(ValueError):
        m.reject("Reason with 192.0.2.1")
    names = {s["reason"] for s in series(registry, "surblocage_ingest_rejections_total")}
    assert names == set(metrics.REJECTION_REASONS)


def test_set_flags_replaces_the_whole_set_so_closed_flags_disappear(registry, m):
    m.set_flags(
        [
            ("Orange", "mycanal", "iptv_legal", "dns"),
            ("Orange", "dazn", "sports_legal", "tcp_ip"),
            ("Free", "mycanal", "iptv_legal", "dns"),
        ]
    )
    assert len(series(registry, "surblocage_flags_open")) == 3
    m.set_flags([("Orange", "dazn", "sports_legal", "tcp_ip")])
    assert series(registry, "surblocage_flags_open") == [
        {"network": "Orange", "service": "dazn", "category": "sports_legal", "method": "tcp_ip"}
    ]
    assert (
        value(
            registry,
            "surblocage_flags_open",
            network="Orange",
            service="dazn",
            category="sports_legal",
            method="tcp_ip",
        )
        == 1
    )
    m.set_flags([])
    assert series(registry, "surblocage_flags_open") == []


def test_a_flag_given_twice_is_one_series_of_value_one(registry, m):
    flag = ("Bouygues Telecom", "deezer", "music", "http_blockpage")
    m.set_flags([flag, flag])
    assert series(registry, "surblocage_flags_open") == [
        {"network": "Bouygues Telecom", "service": "deezer", "category": "music",
         "method": "http_blockpage"}
    ]  # fmt: skip


def test_flag_opened_counts_per_network_and_method(registry, m):
    m.flag_opened("Orange", "tcp_ip", 3)
    m.flag_opened("Orange", "tcp_ip")
    name = "surblocage_flags_opened_total"
    assert value(registry, name, network="Orange", method="tcp_ip") == 4
    assert value(registry, name, network="Orange", method="dns") == 0


def test_set_probes_reports_live_and_silent_and_forgets_vanished_networks(registry, m):
    m.set_probes([("Orange", 3, 1), ("SFR", 0, 2)])
    assert value(registry, "surblocage_probes", network="Orange", status="live") == 3
    assert value(registry, "surblocage_probes", network="Orange", status="silent") == 1
    assert value(registry, "surblocage_probes", network="SFR", status="live") == 0
    m.set_probes([("Orange", 4, 0)])
    assert value(registry, "surblocage_probes", network="Orange", status="live") == 4
    assert value(registry, "surblocage_probes", network="SFR", status="silent") is None


def test_set_collateral_sets_both_gauges_and_adds_networks_folded_together(registry, m):
    m.set_collateral([("Orange", 2, 7), (None, 1, 1), ("10.0.0.1", 1, 3)])
    assert value(registry, "surblocage_collateral_addresses", network="Orange") == 2
    assert value(registry, "surblocage_collateral_services", network="Orange") == 7
    assert value(registry, "surblocage_collateral_addresses", network="unknown") == 2
    assert value(registry, "surblocage_collateral_services", network="unknown") == 4
    m.set_collateral([])
    assert series(registry, "surblocage_collateral_addresses") == []


def test_network_seen_only_moves_forward_and_bulk_set_replaces(registry, m):
    name = "surblocage_network_last_seen_timestamp_seconds"
    m.network_seen("Free", 2000.0)
    m.network_seen("Free", 1000.0)
    assert value(registry, name, network="Free") == 2000.0
    m.set_network_last_seen([("SFR", 500.0), ("SFR", 700.0)])
    assert value(registry, name, network="SFR") == 700.0
    assert value(registry, name, network="Free") is None
    m.network_seen("SFR", 600.0)
    assert value(registry, name, network="SFR") == 700.0


def test_observe_control_counts_outcomes_and_durations(registry, m):
    m.observe_control(True, 0.3)
    m.observe_control(False, 12.0)
    m.observe_control(True, 0.07)
    assert value(registry, "surblocage_control_requests_total", status="ok") == 2
    assert value(registry, "surblocage_control_requests_total", status="failed") == 1
    assert value(registry, "surblocage_control_duration_seconds_count") == 3
    assert value(registry, "surblocage_control_duration_seconds_bucket", le="0.1") == 1
    assert value(registry, "surblocage_control_duration_seconds_sum") == pytest.approx(12.37)


def test_time_store_observes_even_when_the_block_raises(registry, m):
    with m.time_store("insert_batch"):
        pass
    with pytest.raises(RuntimeError), m.time_store("insert_batch"):
        raise RuntimeError("database went away")
    m.observe_store("export", 0.5)
    count = "surblocage_store_duration_seconds_count"
    assert value(registry, count, operation="insert_batch") == 2
    assert value(registry, count, operation="export") == 1
    assert value(registry, count, operation="query") == 0


def test_build_info_is_one_with_the_version(registry, m):
    assert value(registry, "surblocage_build_info", version="1.2.3") == 1


def test_build_info_defaults_to_the_installed_version(registry):
    metrics.Metrics(registry)
    (labels,) = series(registry, "surblocage_build_info")
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", labels["version"])


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("Orange", "Orange"),
        ("  Bouygues Telecom ", "Bouygues Telecom"),
        ("Société Française du Radiotéléphone", "Société Française du Radiotéléphone"),
        ("Orange S.A.", "Orange S.A."),
        ("AS3215", "AS3215"),
        (None, "unknown"),
        ("", "unknown"),
        ("192.0.2.1", "unknown"),
        ("probe at 10.1.2.3 home", "unknown"),
        ("2001:db8::1", "unknown"),
        ("10.0.0.0/8", "unknown"),
        ("https://evil.example/", "unknown"),
        ("x" * 65, "unknown"),
        ('Orange"} 1\nsurblocage_fake 1', "unknown"),
    ],
)
def test_network_label_keeps_names_and_drops_addresses_and_urls(name, label):
    assert metrics.network_label(name) == label


def test_no_label_ever_carries_an_address_or_a_url(registry, m):
    hostile = ["198.51.100.7", "http://203.0.113.9/", "2001:db8::2", "a.b.c.d:443", "10.0.0.0/8"]
    for name in hostile:
        m.record_ingested(name, "ok")
        m.network_seen(name, 1.0)
        m.flag_opened(name, "dns")
    m.set_flags([(name, name, "general", "dns") for name in hostile])
    m.set_probes([(name, 1, 0) for name in hostile])
    text = prometheus_client.generate_latest(registry).decode()
    labels = re.findall(r'="([^"]*)"', text)
    assert labels, "the exposition should have labelled samples"
    for label in labels:
        assert not re.search(r"\d{1,3}(\.\d{1,3}){3}", label), label
        assert "://" not in label and ":" not in label, label
    assert (
        value(
            registry,
            "surblocage_records_ingested_total",
            network="unknown",
            declared_network="unknown",
            status="ok",
        )
        == 5
    )
    assert value(registry, "surblocage_probes", network="unknown", status="live") == 5


def test_networks_past_the_cap_fold_into_other(registry):
    m = metrics.Metrics(registry, version="0", max_networks=2)
    for name in ("Orange", "SFR", "Free", "Bouygues"):
        m.record_ingested(name, "ok")
    m.record_ingested("Orange", "ok")
    networks = {s["network"] for s in series(registry, "surblocage_records_ingested_total")}
    assert networks == {"Orange", "SFR", "other"}
    assert (
        value(
            registry,
            "surblocage_records_ingested_total",
            network="other",
            declared_network="other",
            status="ok",
        )
        == 2
    )
    assert (
        value(
            registry,
            "surblocage_records_ingested_total",
            network="Orange",
            declared_network="Orange",
            status="ok",
        )
        == 2
    )


def test_metrics_stay_on_the_injected_registry(registry, m):
    m.record_ingested("Orange", "ok")
    assert prometheus_client.REGISTRY.get_sample_value("surblocage_build_info") is None
    other = prometheus_client.CollectorRegistry()
    metrics.Metrics(other, version="9")
    assert (
        value(
            other,
            "surblocage_records_ingested_total",
            network="Orange",
            declared_network="Orange",
            status="ok",
        )
        is None
    )


def test_every_name_has_the_prefix_and_passes_promtool_lint(registry, m):
    m.record_ingested("Orange", "blocked")
    m.set_flags([("Orange", "mycanal", "iptv_legal", "dns")])
    m.set_probes([("Orange", 1, 0)])
    families = {f.name for f in registry.collect()}
    # every metric of the collector's own carries the prefix; process_* are the standard ones
    # of client_python's ProcessCollector, named as every exporter names them
    ours = {name for name in families if not name.startswith("process_")}
    assert ours and all(name.startswith("surblocage_") for name in ours)
    assert "process_resident_memory_bytes" in families
    promtool = need("promtool", "prometheus")
    exposition = prometheus_client.generate_latest(registry)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    broken = exposition + b"# TYPE surblocage_bad_total gauge\nsurblocage_bad_total 1\n"
    rejected = subprocess.run(
        [promtool, "check", "metrics"], input=broken, capture_output=True, check=False
    )
    assert rejected.returncode != 0, "promtool should lint a gauge named like a counter"
