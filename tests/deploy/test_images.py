"""deploy/container: both images built FROM a local Debian base and started (test-images.sh).

No registry is needed: the base is a debootstrap root imported into Docker (the Containerfiles
take it as ARG BASE). scripts/test-images.sh uses the running Docker daemon or starts its own; it
needs root, the debootstrap and docker.io packages, and PyPI (the locked wheels). Marked
`install` (minutes): .ci/run runs it after `make test`, as a step of its own.
"""

import os
import subprocess

import pytest

from tests.deploy.conftest import ROOT, need


@pytest.mark.install
@pytest.mark.timeout(2400)
def test_images_build_and_start():
    if os.geteuid() != 0:
        pytest.skip("needs root: scripts/test-images.sh builds a Debian root and runs dockerd")
    need("debootstrap", "debootstrap")
    need("docker", "docker.io")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-images.sh")],
        capture_output=True,
        text=True,
        timeout=2300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "test-images: all checks passed" in done.stderr
