"""Headless Chromium for the dashboard's tests: dump a page's DOM after its scripts ran, or
take a screenshot. It is only ever pointed at a collector on loopback."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import urllib.parse

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",  # the suite runs as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # a proxy from the environment must not see the loopback traffic
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--virtual-time-budget=5000",  # let the first refresh finish (timers run in virtual time)
    "--enable-logging=stderr",  # console messages, to tell a script error from an empty page
)
TIMEOUT_SECONDS = 90


def executable() -> str:
    """Return Chromium's path, or skip the test (a failure in strict mode) when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (scripts/test-deps.sh installs it)")
    return found


def _loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    assert host in ("127.0.0.1", "::1", "localhost"), f"not a loopback URL: {url}"
    return url


async def run(profile: pathlib.Path, url: str, *extra: str) -> tuple[str, str]:
    """Open ``url`` in a fresh profile with ``extra`` flags; return (stdout, stderr)."""
    argv = [executable(), *FLAGS, f"--user-data-dir={profile}", *extra, _loopback(url)]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace"), err.decode(errors="replace")


async def dump_dom(tmp: pathlib.Path, url: str) -> tuple[str, str]:
    """Return the page's DOM as serialized after its scripts ran, and Chromium's log."""
    return await run(tmp / "profile-dom", url, "--dump-dom")


async def screenshot(tmp: pathlib.Path, url: str, size: tuple[int, int]) -> pathlib.Path:
    """Save a PNG of the page at ``size`` (width, height); return its path."""
    path = tmp / "dash.png"
    await run(
        tmp / "profile-shot",
        url,
        f"--screenshot={path}",
        f"--window-size={size[0]},{size[1]}",
        "--hide-scrollbars",
    )
    return path
