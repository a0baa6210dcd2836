"""deploy/container: both images built FROM a local Debian base and started (test-images.sh).

No registry is needed: the base is a debootstrap root imported into Docker (the Containerfiles
take it as ARG BASE). scripts/test-images.sh uses the running Docker daemon or starts its own; it
needs root, the debootstrap and docker.io packages, and PyPI (the locked wheels). Marked
`install` (minutes): .ci/run runs it after `make test`, as a step of its own.
"""

import pytest

from tests.deploy.conftest import need, run_root_script


@pytest.mark.install
@pytest.mark.timeout(2400)
def test_images_build_and_start():
    need("debootstrap", "debootstrap")
    need("docker", "docker.io")
    done = run_root_script(
        "test-images", 2300, "scripts/test-images.sh builds a Debian root and runs dockerd"
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "test-images: all checks passed" in done.stderr
