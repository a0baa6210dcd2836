"""Shared test configuration: strict mode turns a skipped lab or PostgreSQL test into a failure."""

import os
import pathlib

import pytest

# fixtures shared by the suites: the PostgreSQL session database
pytest_plugins = ["tests.support.postgres"]

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


@pytest.fixture
def asn_file(tmp_path: pathlib.Path) -> str:
    """A MaxMind-format ASN database: 127.0.0.0/8 is AS 64500 "Test ISP"."""
    import mmdb_writer
    import netaddr

    writer = mmdb_writer.MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN"
    )
    writer.insert_network(
        netaddr.IPSet(["127.0.0.0/8"]),
        {"autonomous_system_number": 64500, "autonomous_system_organization": "Test ISP"},
    )
    path = tmp_path / "asn.mmdb"
    writer.to_db_file(str(path))
    return str(path)
