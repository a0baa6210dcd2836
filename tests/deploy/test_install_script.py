"""deploy/install-probe.sh: its usage checks here; a real install in a fresh Debian chroot.

The install itself is scripts/test-install.sh (debootstrap, chroot, pip from PyPI, a DNS server
on loopback), and where systemd runs scripts/test-install-systemd.sh (the same root booted in
systemd-nspawn), each run as a real process: they need root, the debootstrap package and the
Debian and PyPI registries. Without root they are skipped with the reason (a failure in strict
mode, CI). They take minutes, so they are marked `install`: .ci/run runs `make test` without
them, then the `install` tests as a step of their own (`pytest -m install tests/deploy`).
"""

import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, need, run_root_script

SCRIPT = DEPLOY / "install-probe.sh"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("dash", "dash"), str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_script_is_posix_sh():
    parsed = subprocess.run(
        [need("dash", "dash"), "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0, parsed.stderr
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")


def test_help_names_every_option_and_the_exit_statuses():
    helped = install("--help")
    assert helped.returncode == 0, helped.stderr
    for option in ("--collector", "--source", "--no-start", "--uninstall", "--purge"):
        assert option in helped.stdout
    assert "Exit status" in helped.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (["--colector", "https://c.example"], "unknown argument: --colector"),
        (["--collector"], "--collector needs a URL"),
        (["--collector", "ftp://c.example"], "must start with https://"),
        (["--collector", "https://c.example/ x"], "no space, quote or backslash"),
        (["--collector", 'https://c"x'], "no space, quote or backslash"),
        (["--source", ""], "--source: empty SPEC"),
        (["--purge"], "--purge goes with --uninstall"),
    ],
)
def test_bad_usage_exits_2_with_one_line_naming_the_argument(args, says):
    refused = install(*args)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert says in refused.stderr
    assert refused.stderr.startswith("install-probe: ")


@pytest.mark.install
@pytest.mark.timeout(1800)
def test_install_in_a_debian_chroot():
    need("debootstrap", "debootstrap")
    done = run_root_script(
        "test-install", 1700, "scripts/test-install.sh builds a Debian chroot (sudo it)"
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "test-install: all checks passed" in done.stderr


@pytest.mark.install
@pytest.mark.timeout(900)
def test_install_where_systemd_runs_enables_starts_restarts_and_removes():
    need("debootstrap", "debootstrap")
    need("systemd-nspawn", "systemd-container")
    done = run_root_script(
        "test-install-systemd", 850, "scripts/test-install-systemd.sh boots a Debian root (sudo it)"
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "test-install-systemd: all checks passed" in done.stderr
