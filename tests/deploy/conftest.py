"""Fixtures for the deploy tests: where the deploy files are, and the external tools they need."""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# each systemd unit's one copy: the probe's ships in the package, for installs without a clone
UNIT_FILES = {
    "surblocage-probe.service": ROOT / "probe" / "data" / "surblocage-probe.service",
    "surblocage-collector.service": DEPLOY / "systemd" / "surblocage-collector.service",
}


def need(tool: str, package: str) -> str:
    """Return the path of `tool`, or skip the test (a failure in strict mode) naming its package."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian package {package})")
    return path


def run_root_script(
    name: str, timeout_seconds: float, why: str
) -> subprocess.CompletedProcess[str]:
    """Run scripts/<name>.sh as root (skip saying ``why`` otherwise); return what it did."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / f"{name}.sh")],
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )


@pytest.fixture
def deploy() -> pathlib.Path:
    """Return the deploy/ directory of this checkout."""
    return DEPLOY
