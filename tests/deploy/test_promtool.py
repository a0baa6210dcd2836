"""deploy/prometheus: promtool checks the rules, runs their tests, and catches a broken copy."""

import pathlib
import re
import shutil
import subprocess
import urllib.parse

import prometheus_client
import pytest
import yaml

from collector import metrics
from scripts import alert_rules
from tests.deploy.conftest import DEPLOY, need

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "surblocage.rules.yml"
RULE_TESTS = PROMETHEUS / "surblocage.rules.test.yml"
SEVERITIES = {"critical", "warning", "info"}
# a metric name standing alone, not inside a recording rule's level:metric:operation name
METRIC_NAME = re.compile(r"(?<![:\w])surblocage_\w+(?![:\w])")


def promtool(*args: str, cwd: pathlib.Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("promtool", "prometheus"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def exported_names() -> set[str]:
    """Return every sample name the collector's metrics expose (with _bucket, _count, ...)."""
    registry = prometheus_client.CollectorRegistry()
    m = metrics.Metrics(registry, version="0")
    m.record_ingested("Orange", "ok")
    m.set_flags([("Orange", "mycanal", "iptv_legal", "dns")])
    m.set_collateral([("Orange", 1, 2)])
    m.set_census([(3215, "Orange", 1, 120)])
    m.set_probes([("Orange", 1, 0)])
    m.network_seen("Orange")
    m.observe_control(True, 1.0)
    return {s.name for family in registry.collect() for s in family.samples}


def test_promtool_check_rules_passes():
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_unit_tests_pass():
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def copy_prometheus_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    for path in (RULES, RULE_TESTS):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_broken_expectation_fails(tmp_path):
    """The unit tests bite: a wrong expected annotation makes promtool fail."""
    directory = copy_prometheus_dir(tmp_path)
    tests = directory / RULE_TESTS.name
    right = 'summary: "mycanal (iptv_legal) is blocked on Bouygues Telecom (dns)"'
    assert right in tests.read_text()
    tests.write_text(tests.read_text().replace(right, right.replace("(dns)", "(tls)")))
    failed = promtool("test", "rules", tests.name, cwd=directory)
    assert failed.returncode != 0
    assert "FAILED" in failed.stdout + failed.stderr
    assert "SurblocageLegalServiceBlocked" in failed.stdout + failed.stderr


def test_a_weakened_rule_fails_its_tests(tmp_path):
    """A wave threshold raised past the tested case leaves the firing expectation unmet."""
    directory = copy_prometheus_dir(tmp_path)
    copy = directory / RULES.name
    rule = "sum by (network) (increase(surblocage_flags_opened_total[15m])) >= 3"
    assert rule in copy.read_text()
    copy.write_text(copy.read_text().replace(rule, rule.replace(">= 3", ">= 4")))
    assert promtool("check", "rules", copy.name, cwd=directory).returncode == 0
    failed = promtool("test", "rules", RULE_TESTS.name, cwd=directory)
    assert failed.returncode != 0
    assert "SurblocageBlockingWave" in failed.stdout + failed.stderr


def test_example_prometheus_config_is_valid_and_loads_the_rules():
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["surblocage-collector"]["static_configs"][0]["targets"]
    assert targets == ["collector:8080"]


REQUIRED_ALERTS = {
    "SurblocageLegalServiceBlocked",
    "SurblocageBlockingWave",
    "SurblocageProbeSilent",
    "SurblocageNetworkWithoutLiveProbe",
    "SurblocageIngestFailing",
    "SurblocageControlFailing",
    "SurblocageCollateralHigh",
}


def test_every_required_alert_exists_with_severity_and_actionable_annotations():
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in alerts()}
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"].strip() and len(notes["description"]) > 150, rule["alert"]
        assert "Check" in notes["description"], f"{rule['alert']}: say what to check"
        runbook = f"{alert_rules.DEFAULTS['runbook_base']}#{rule['alert'].lower()}"
        assert notes["runbook_url"] == runbook
        for link in ("runbook_url", "api", "dashboard"):  # absolute, never a bare path
            if link in notes:
                assert urllib.parse.urlsplit(notes[link]).scheme in ("http", "https"), link


def test_every_alert_is_tested_firing_and_in_a_near_miss():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for name in {rule["alert"] for rule in alerts()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} has no near miss"


def test_rules_use_only_metrics_the_collector_exports():
    exported = exported_names()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used <= exported, f"{rule.get('alert') or rule.get('record')}: {used - exported}"
        for name in re.findall(r"\w+:\w+:\w+", rule["expr"]):
            assert name in recorded, f"{name} is not a recording rule"


def test_alerts_never_add_an_unbounded_label():
    for rule in alerts():
        by = re.findall(r"by \(([^)]*)\)", rule["expr"])
        labels = {label.strip() for group in by for label in group.split(",")} - {""}
        assert labels <= {"network", "service", "category", "method", "job", "le"}, rule["alert"]


def test_every_runbook_anchor_is_a_readme_heading():
    readme = (DEPLOY / "README.md").read_text()
    headings = {
        line.lstrip("#").strip().lower() for line in readme.splitlines() if line.startswith("#")
    }
    for rule in alerts():
        assert rule["alert"].lower() in headings, f"README has no section {rule['alert']}"


@pytest.mark.parametrize("severity", sorted(SEVERITIES))
def test_severity_names_are_what_alertmanager_routes(severity):
    routes = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())["route"]
    matchers = [m for route in routes["routes"] for m in route["matchers"]]
    assert f'severity="{severity}"' in matchers


def test_the_rules_rendered_for_a_deployment_link_there_and_still_pass_their_tests(
    tmp_path: pathlib.Path,
) -> None:
    rules, tests = tmp_path / "site.rules.yml", tmp_path / "site.rules.test.yml"
    bases = {
        "runbook_base": "https://docs.example.org/surblocage/runbooks",
        "collector_url": "https://surblocage.example.org",
        "grafana_url": "https://grafana.example.org/",
    }
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in bases.items()]
    assert alert_rules.main([*argv, "--output", str(rules), "--tests-output", str(tests)]) == 0
    text = rules.read_text()
    assert not any(default in text for default in alert_rules.DEFAULTS.values())
    for rule in yaml.safe_load(text)["groups"][0]["rules"]:
        if "alert" in rule:
            notes = rule["annotations"]
            assert notes["runbook_url"].startswith("https://docs.example.org/surblocage/runbooks#")
            assert notes.get("dashboard", "https://grafana.example.org/d/").startswith(
                "https://grafana.example.org/d/"
            )
    done = promtool("test", "rules", str(tests), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(SystemExit):
        alert_rules.main(["--collector-url", "surblocage.example.org"])  # not absolute
