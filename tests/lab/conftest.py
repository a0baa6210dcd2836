"""The lab fixture: one censorship lab (tests/lab/topology.py) shared by every lab test.

``lab`` is a built ``Lab``: ISP "a" plants every technique of tests/lab/plan.py and has two
probes; ISP "b" plants only a few (dns_localhost, ip_drop), so the rest is honest there. It
skips, with the reason, where namespaces cannot be made (not root, no `ip netns`); the strict
mode of tests/conftest.py turns that skip into a failure in CI.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.lab.plan import TEST_ISPS
from tests.lab.topology import Lab, unusable_reason

HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/lab with the ``lab`` marker."""
    for item in items:
        if HERE in pathlib.Path(str(item.path)).parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def _servers_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each lab test, fail loudly (with its stderr) if a lab server has died."""
    yield
    if "lab" in request.fixturenames:
        request.getfixturevalue("lab").processes.check_alive()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    built = Lab(isps=TEST_ISPS).up()
    try:
        yield built
    finally:
        built.down()
