"""The systemd units pass `systemd-analyze verify`, and their hardening is what we claim.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and `--root=DIR`
wants a whole unit tree (sysinit.target...). So each test copies the units to a temporary
directory with ExecStart pointed at a temporary executable, and verifies the copies. The probe's
unit ships inside the package (probe/data/), so that an install without a clone has it; the
collector's is in deploy/systemd.
"""

import configparser
import pathlib
import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, UNIT_FILES, need

UNITS = {
    "surblocage-probe.service": "/usr/local/bin/surblocage-probe",
    "surblocage-collector.service": "/usr/local/bin/surblocage-collector",
}
# systemd-analyze security's scale is 0-100 here (it prints 1.8 for 18); 20 is "OK".
EXPOSURE_THRESHOLD = 20


def analyze(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("systemd-analyze", "systemd"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def install_copies(tmp_path: pathlib.Path) -> pathlib.Path:
    """Copy the units to tmp_path with ExecStart pointed at a real (temporary) executable."""
    stand_in = tmp_path / "stand-in"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    for unit, binary in UNITS.items():
        text = UNIT_FILES[unit].read_text()
        assert f"ExecStart={binary} " in text
        (tmp_path / unit).write_text(text.replace(f"ExecStart={binary} ", f"ExecStart={stand_in} "))
    return tmp_path


def service(unit: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT_FILES[unit].read_text())
    return parser["Service"]


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path):
    directory = install_copies(tmp_path)
    verified = analyze("verify", *(f"./{unit}" for unit in UNITS), cwd=directory)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == "", verified.stderr


def test_verify_reports_a_misspelt_directive(tmp_path):
    directory = install_copies(tmp_path)
    unit = directory / "surblocage-probe.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    verified = analyze("verify", f"./{unit.name}", cwd=directory)
    assert "strickt" in verified.stderr


def test_verify_fails_when_the_binary_is_missing(tmp_path):
    unit = tmp_path / "surblocage-probe.service"
    text = UNIT_FILES[unit.name].read_text()
    unit.write_text(text.replace("/usr/local/bin/", f"{tmp_path}/missing/"))
    verified = analyze("verify", f"./{unit.name}", cwd=tmp_path)
    assert verified.returncode != 0
    assert "missing" in verified.stderr


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_exposure_score_is_low(tmp_path, unit):
    directory = install_copies(tmp_path)
    scored = analyze(
        "security",
        "--offline=true",
        f"--threshold={EXPOSURE_THRESHOLD}",
        f"./{unit}",
        cwd=directory,
    )
    assert scored.returncode == 0, scored.stdout[-800:]
    assert "Overall exposure level" in scored.stdout


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_hardening_directives(unit):
    s = service(unit)
    assert s["ProtectSystem"] == "strict"
    assert s["NoNewPrivileges"] == "yes"
    assert s["PrivateTmp"] == "yes"
    assert s["Restart"] == "on-failure"
    assert s["SystemCallFilter"] == "~@privileged @resources"  # the last of two lines wins here
    assert "@system-service" in UNIT_FILES[unit].read_text()
    state = f"/var/lib/{s['StateDirectory']}"
    assert s["ReadWritePaths"] == state
    assert f"--config /etc/surblocage/{unit.split('-')[1].split('.')[0]}.yaml" in s["ExecStart"]
    assert {"AF_INET", "AF_INET6"} <= set(s["RestrictAddressFamilies"].split())


def test_only_the_probe_gets_cap_net_raw():
    probe = service("surblocage-probe.service")
    collector = service("surblocage-collector.service")
    assert probe["AmbientCapabilities"] == "CAP_NET_RAW"
    assert probe["CapabilityBoundingSet"] == "CAP_NET_RAW"
    assert probe["DynamicUser"] == "yes"
    assert collector["AmbientCapabilities"] == ""
    assert collector["CapabilityBoundingSet"] == ""
    assert collector["User"] == "surblocage"
    assert "AF_PACKET" not in collector["RestrictAddressFamilies"]


def test_sysusers_file_declares_the_collector_user():
    line = (DEPLOY / "systemd" / "surblocage.conf").read_text().splitlines()[-1]
    assert line.split()[:2] == ["u", "surblocage"]
    assert line.endswith("/var/lib/surblocage-collector")
