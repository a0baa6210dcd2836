"""deploy/alertmanager: amtool accepts the example config and routes each severity as meant."""

import pathlib
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, need

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
RULES = DEPLOY / "prometheus" / "surblocage.rules.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("amtool", "prometheus-alertmanager"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_amtool_check_config_passes():
    checked = amtool("check-config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    assert "2 inhibit rules" in checked.stdout


def test_a_route_to_an_undefined_receiver_fails(tmp_path: pathlib.Path):
    broken = tmp_path / "alertmanager.yml"
    text = CONFIG.read_text()
    assert "receiver: surblocage-critical\n" in text
    broken.write_text(text.replace("receiver: surblocage-critical\n", "receiver: nobody\n", 1))
    checked = amtool("check-config", str(broken))
    assert checked.returncode != 0
    assert "nobody" in checked.stdout + checked.stderr


def severities_in_rules() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["labels"]["severity"] for g in groups for r in g["rules"] if "alert" in r}


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=SurblocageLegalServiceBlocked"], "surblocage-critical"),
        (["severity=warning", "alertname=SurblocageProbeSilent"], "surblocage-warning"),
        (["severity=info"], "surblocage-info"),
        (["alertname=WrittenWithoutSeverity"], "surblocage-default"),
    ],
)
def test_routes_by_severity(labels, receiver):
    routed = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.strip() == receiver


def test_every_severity_the_rules_use_has_its_own_receiver():
    for severity in severities_in_rules():
        routed = amtool(
            "config", "routes", "test", f"--config.file={CONFIG}", f"severity={severity}"
        )
        assert routed.stdout.strip() == f"surblocage-{severity}", severity
