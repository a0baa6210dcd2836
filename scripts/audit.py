"""pip-audit on the lock file: a known vulnerability fails, an unreachable service is skipped.

Exit status: 0 when no locked version has a known vulnerability, or when the check could not be
made (one line on stdout says so and why: CI must not fail on a network outage); 1 when a locked
version has a known vulnerability (pip-audit's report is printed); 2 when pip-audit failed for
another reason (a lock file it cannot read, a bad option): that is a bug to fix, not an outage.

pip-audit reports a package whose version the service does not know as skipped and still exits 0;
when every package is skipped the service did not really answer, and this says so instead of
printing a green "no known vulnerabilities".
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

# what requests and urllib3 print when the service cannot be reached at all
NETWORK_ERROR = re.compile(
    r"ConnectionError|ProxyError|ConnectTimeout|ReadTimeout|Max retries exceeded"
    r"|NameResolutionError|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|SSLError"
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", default="requirements/lock.txt", help="hashed requirements file")
    parser.add_argument(
        "--pip-audit",
        default=str(pathlib.Path(sys.executable).with_name("pip-audit")),
        help="the pip-audit program (default: the one next to this Python)",
    )
    parser.add_argument("--service", default="pypi", help="pip-audit's vulnerability service")
    return parser.parse_args(argv)


def run_pip_audit(args: argparse.Namespace, report: pathlib.Path) -> subprocess.CompletedProcess:
    """Run pip-audit on the pinned, hashed lock without resolving it again; JSON to `report`."""
    command = [args.pip_audit, "-r", args.lock, "--require-hashes", "--disable-pip"]
    command += ["--vulnerability-service", args.service, "--progress-spinner", "off"]
    command += ["--format", "json", "--output", str(report)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def summarize(dependencies: list[dict]) -> tuple[list[str], list[str], int]:
    """Return the findings (one line each), the skipped packages, and how many were audited."""
    findings, skipped, audited = [], [], 0
    for dep in dependencies:
        if "skip_reason" in dep:
            skipped.append(dep["name"])
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            aliases = ", ".join(vuln.get("aliases", []))
            findings.append(
                f"{dep['name']} {dep['version']}: {vuln['id']} ({aliases}); fixed in {fixed}"
            )
    return findings, skipped, audited


def verdict(done: subprocess.CompletedProcess, report: pathlib.Path, lock: str) -> int:
    """Print what the audit found or why it was skipped, and return the exit status."""
    if not report.exists() or not report.read_text().strip():
        said = (done.stderr or done.stdout).strip()
        if NETWORK_ERROR.search(said):
            why = said.splitlines()[-1][:300] if said else "no answer"
            print(f"audit: skipped, the vulnerability service could not be reached ({why})")
            return 0
        print(f"audit: pip-audit failed (exit {done.returncode}) on {lock}:\n{said}")
        return 2
    dependencies = json.loads(report.read_text())["dependencies"]
    findings, skipped, audited = summarize(dependencies)
    if findings:
        print(f"audit: {len(findings)} known vulnerabilities in {lock}:")
        print("\n".join(f"  {line}" for line in findings))
        return 1
    if audited == 0:
        print(
            f"audit: skipped, the vulnerability service answered for none of the {len(skipped)}"
            f" packages of {lock} (it does not know their versions: offline or a partial mirror)"
        )
        return 0
    print(f"audit: no known vulnerabilities in {audited} packages of {lock}")
    if skipped:
        print(f"audit: not audited (unknown to the service): {', '.join(sorted(skipped))}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        report = pathlib.Path(scratch) / "audit.json"
        try:
            done = run_pip_audit(args, report)
        except FileNotFoundError:
            print(f"audit: {args.pip_audit} not found: it comes with the dev extra (make lint)")
            return 2
        return verdict(done, report, args.lock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
