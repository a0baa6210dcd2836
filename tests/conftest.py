"""Shared test configuration: strict mode turns a skipped lab or PostgreSQL test into a failure."""

import os

import pytest

STRICT = os.environ.get("SURBLOCAGE_STRICT") == "1" or os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In strict mode (CI), a skip is a failure: a lab or database test must run, not vanish."""
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in strict mode (SURBLOCAGE_STRICT=1 / CI): {reason}"
