"""Test harness of the probe daemon: probe processes, and a collector process watching names.

Everything listens on 127.0.0.1; the DNS server (tests/support) runs in a thread of its own so
that the probe subprocesses are served whatever the test is doing (waiting, killing, reading).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from tests.support.collector_process import CollectorProcess, write_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOMAIN = "surblocage.test"  # no resolver knows it: only our DNS server answers
PATIENCE_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = PATIENCE_SECONDS) -> Any:
    """Poll ``check`` until it returns a true value; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def watchlist(names: Iterable[str]) -> dict[str, Any]:
    """A watchlist with one service a name, measured at https://<name>.surblocage.test/."""
    return {
        "services": [
            {"id": n, "name": n, "category": "general", "urls": [f"https://{n}.{DOMAIN}/"]}
            for n in names
        ]
    }


# --- the collector ------------------------------------------------------------------------------


def collector_process(tmp: pathlib.Path, names: Iterable[str]) -> CollectorProcess:
    """Start `surblocage-collector serve` on SQLite in ``tmp``, watching ``names``."""
    wl = tmp / "collector-watchlist.yaml"
    wl.write_text(yaml.safe_dump(watchlist(names)))
    config = write_config(tmp / "collector.yaml")
    args = ("--config", config, "--watchlist", str(wl))
    return CollectorProcess(f"sqlite:///{tmp / 'collector.db'}", tmp / "collector.log", *args)


# --- the probe ----------------------------------------------------------------------------------


class ProbeProcess:
    """`surblocage-probe run` (or another command) with JSON logs kept in a file."""

    def __init__(self, tmp: pathlib.Path, dns_port: int, **settings: Any) -> None:
        self.tmp = tmp
        self.state_dir = tmp / "state"
        self.config = tmp / "probe.yaml"
        self.log = tmp / "probe.log"
        self.out = tmp / "probe.out"
        doc = {
            "state_dir": str(self.state_dir),
            "control": {"enabled": False},
            "dns": {"resolver": f"127.0.0.1:{dns_port}"},
            "timeouts": {"dns": 1, "tcp": 1, "tls": 1, "http": 1, "target": 4},
            "schedule": {"interval_seconds": 1, "jitter_seconds": 0},
            "log": {"format": "json", "level": "DEBUG"},
        }
        for key, value in settings.items():
            section, _, sub = key.partition("__")  # schedule__interval_seconds=...
            if sub:
                doc.setdefault(section, {})[sub] = value
            else:
                doc[section] = value
        self.config.write_text(yaml.safe_dump(doc))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> ProbeProcess:
        argv = [sys.executable, "-m", "probe", *(args or ("run",)), "--config", str(self.config)]
        with self.log.open("ab") as log, self.out.open("ab") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=log)
        return self

    def run(self, *args: str, timeout: float = PATIENCE_SECONDS) -> int:
        """Run a command to its end; return its exit status."""
        self.start(*args)
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def events(self, msg: str | None = None) -> list[dict[str, Any]]:
        """Return the JSON log lines so far (those with message ``msg`` only, if given)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        out = []
        for line in lines:
            if line.startswith("{"):
                e = json.loads(line)
                if msg is None or e["msg"] == msg:
                    out.append(e)
        return out

    def spooled_ids(self) -> list[str]:
        """Every record id the probe said it committed to its spool (repeats kept)."""
        return [e["id"] for e in self.events("record spooled")]

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=PATIENCE_SECONDS)

    def spool_ids(self) -> list[str]:
        """The ids still in the spool, read straight from its database."""
        db = sqlite3.connect(self.state_dir / "spool.db")
        try:
            return [i for (i,) in db.execute("SELECT id FROM records ORDER BY seq")]
        finally:
            db.close()

    def probe_id(self) -> str:
        doc = json.loads((self.state_dir / "identity.json").read_text())
        return str(doc["probe_id"])
