"""Entering the lab's network namespaces: ``ip`` commands, child processes, in-process threads.

``run_in`` moves one fresh thread into a netns with setns(2) (Python 3.11 has no os.setns, so
through ctypes; lab.md §10) and runs a coroutine there on its own event loop: sockets it opens
live in that namespace. Such a thread still reads the host's /etc/resolv.conf, so code run this
way must name its DNS servers explicitly.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.lab.processes import LabError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
R = TypeVar("R")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one ``ip`` command; raise LabError with its stderr when it fails and check is set."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def exec_in(
    ns: str, argv: list[str], timeout: float = 60, input: str | None = None,
    env: dict[str, str] | None = None, check: bool = False,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run argv inside netns ``ns`` (``ip netns exec``: /etc/netns/NS files are bind-mounted)."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout,
        input=input, env=env,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise LabError(f"in {ns}: {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return done


def run_in(ns: str, coro_fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
    """Run ``coro_fn(*args)`` on a new event loop in a thread that entered netns ``ns``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            _enter(ns)
            box["result"] = asyncio.run(coro_fn(*args))
        except BaseException as e:  # carried back to the caller's thread, re-raised there
            box["error"] = e

    thread = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)
