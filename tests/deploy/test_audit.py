"""scripts/audit.py: a finding fails, an outage is a one-line skip, any other error fails.

pip-audit itself is replaced by a stub that answers as the real one does (its JSON report, or its
traceback when pypi.org cannot be reached): the tests must not need the Internet.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"

CONNECTION_REFUSED = (
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): "
    "Max retries exceeded with url: /pypi/aiohttp/3.14.5/json"
)
AIOHTTP_CVE = {
    "name": "aiohttp",
    "version": "3.14.2",
    "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.14.3"], "aliases": ["CVE-2026-69244"]}],
}


def stub(tmp_path: pathlib.Path, report: dict | None, stderr: str = "", status: int = 0) -> str:
    """Write a pip-audit stand-in that records its arguments and answers `report` (JSON)."""
    program = tmp_path / "pip-audit"
    program.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'argv.json')!r}).write_text(json.dumps(sys.argv[1:]))\n"
        f"report = {report!r}\n"
        "if report is not None:\n"
        "    out = sys.argv[sys.argv.index('--output') + 1]\n"
        "    pathlib.Path(out).write_text(json.dumps(report))\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({status})\n"
    )
    program.chmod(0o755)
    return str(program)


def audit(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/audit.py", "--pip-audit", program, "--lock", str(LOCK)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_audits_the_hashed_lock_without_resolving_it(tmp_path):
    done = audit(stub(tmp_path, {"dependencies": [], "fixes": []}))
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[argv.index("-r") + 1] == str(LOCK)
    assert {"--require-hashes", "--disable-pip"} <= set(argv)
    assert done.returncode == 0


def test_a_known_vulnerability_fails_and_is_named(tmp_path):
    report = {"dependencies": [AIOHTTP_CVE, {"name": "h11", "version": "0.16.0", "vulns": []}]}
    done = audit(stub(tmp_path, report, status=1))
    assert done.returncode == 1
    assert "aiohttp 3.14.2: GHSA-xxxx (CVE-2026-69244); fixed in 3.14.3" in done.stdout


def test_a_clean_audit_passes_and_says_how_many_packages(tmp_path):
    report = {"dependencies": [{"name": "h11", "version": "0.16.0", "vulns": []}] * 3}
    done = audit(stub(tmp_path, report))
    assert done.returncode == 0
    assert done.stdout.startswith("audit: no known vulnerabilities in 3 packages")


def test_an_unreachable_service_is_a_skip_that_says_why(tmp_path):
    done = audit(stub(tmp_path, None, stderr=f"Traceback ...\n{CONNECTION_REFUSED}\n", status=1))
    assert done.returncode == 0
    (line,) = done.stdout.splitlines()
    assert line.startswith("audit: skipped, the vulnerability service could not be reached")
    assert "Max retries exceeded" in line


def test_a_service_that_knows_no_version_is_a_skip_not_a_pass(tmp_path):
    skip = "Dependency not found on PyPI and could not be audited: aiohttp (3.14.5)"
    report = {"dependencies": [{"name": "aiohttp", "skip_reason": skip}] * 2}
    done = audit(stub(tmp_path, report))
    assert done.returncode == 0
    assert done.stdout.startswith("audit: skipped, the vulnerability service answered for none")
    assert "no known vulnerabilities" not in done.stdout


@pytest.mark.parametrize("stderr", ["ERROR:pip_audit._cli:invalid requirements input: x\n", ""])
def test_any_other_failure_of_pip_audit_fails(tmp_path, stderr):
    done = audit(stub(tmp_path, None, stderr=stderr, status=1))
    assert done.returncode == 2
    assert "pip-audit failed" in done.stdout
