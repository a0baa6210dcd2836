"""deploy/compose.yaml and deploy/container: compose accepts the file; the images run non-root.

The compose check needs a compose client: `docker compose` (v2) or, failing that, the
`docker-compose` 1.x of Debian. `config` only reads files; no container engine is needed.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, UNIT_FILES

COMPOSE = DEPLOY / "compose.yaml"
SERVICES = {"postgres", "migrate", "collector", "prometheus", "alertmanager", "grafana"}
SECRETS = {"SURBLOCAGE_DB_PASSWORD": "db-secret", "GRAFANA_ADMIN_PASSWORD": "grafana-secret"}


def compose_command() -> list[str]:
    """Return the compose client to use, or skip saying why `docker compose version` failed."""
    docker = shutil.which("docker")
    why = "docker client not installed"
    if docker:
        version = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if version.returncode == 0:
            return [docker, "compose"]
        said = " ".join((version.stderr or version.stdout).split())
        why = f"`docker compose version` failed ({said})"
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip(f"{why}; and no docker-compose (Debian package docker-compose) either")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS} | env
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
        check=False,
    )


def test_compose_config_accepts_the_file():
    configured = compose_config(SECRETS)
    assert configured.returncode == 0, configured.stderr
    resolved = yaml.safe_load(configured.stdout)
    assert set(resolved["services"]) == SERVICES
    command = resolved["services"]["collector"]["command"]
    assert "postgresql://surblocage:db-secret@postgres:5432/surblocage" in command
    depends = resolved["services"]["collector"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_compose_refuses_to_start_without_the_passwords():
    configured = compose_config({"GRAFANA_ADMIN_PASSWORD": "x"})
    assert configured.returncode != 0
    assert "SURBLOCAGE_DB_PASSWORD" in configured.stderr


def compose_file() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_bind_mount_source_exists():
    for name, spec in compose_file()["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"


def test_only_the_collector_is_published_beyond_loopback():
    for name, spec in compose_file()["services"].items():
        for port in spec.get("ports", []):
            if name == "collector":
                assert port == "8080:8080"
            else:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} to every address"


def test_prometheus_gets_the_rules_and_alertmanager_its_config():
    services = compose_file()["services"]
    assert "./prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert "./alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    for name in ("collector", "migrate", "prometheus", "alertmanager", "grafana"):
        assert services[name]["cap_drop"] == ["ALL"], name


@pytest.mark.parametrize("image", ["probe", "collector"])
def test_containerfile_is_slim_python_by_default_installed_with_pip_and_not_root(image):
    text = (DEPLOY / "container" / f"Containerfile.{image}").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms and all(f == "${BASE}" for f in froms)
    (base,) = re.findall(r"^ARG BASE=(\S+)", text, re.MULTILINE)
    assert base.split("@")[0].endswith("python:3.11-slim")
    assert re.search(r"^\s*&& pip install .*surblocage", text, re.MULTILINE)
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user.split(":")[0] not in {"root", "0"}
    assert f'ENTRYPOINT ["surblocage-{image}"]' in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (DEPLOY.parent / source).exists(), source


def test_containerfiles_run_the_commands_the_units_run():
    for image in ("probe", "collector"):
        text = (DEPLOY / "container" / f"Containerfile.{image}").read_text()
        unit = UNIT_FILES[f"surblocage-{image}.service"].read_text()
        cmd = re.search(r'^CMD \["(\w+)", "--config", "([^"]+)"', text, re.MULTILINE)
        assert cmd is not None
        assert f"surblocage-{image} {cmd[1]} --config {cmd[2]}" in unit


def test_compose_paths_are_relative_to_deploy():
    collector = compose_file()["services"]["collector"]
    assert pathlib.PurePosixPath(collector["build"]["context"]) == pathlib.PurePosixPath("..")
    assert (DEPLOY.parent / collector["build"]["dockerfile"]).is_file()
