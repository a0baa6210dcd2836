"""Fixtures for the deploy tests: where the deploy files are, and the external tools they need."""

import pathlib
import shutil

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


@pytest.fixture
def deploy() -> pathlib.Path:
    """Return the deploy/ directory of this checkout."""
    return DEPLOY
