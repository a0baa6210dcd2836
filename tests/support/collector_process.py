"""`python -m collector serve` as a process of the tests: on loopback, its logs kept in a file.

Stopped and started again, it keeps its port and its database: a probe configured with its URL
finds it again, as after a restart of the real service.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
PATIENCE_SECONDS = 60.0  # a liveness bound for starting and stopping, not a timing assertion
# urllib would use $http_proxy: the tests talk to loopback only
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The suites' records are dated in the past, from probes registered a moment before.
ENVIRONMENT = {
    "SURBLOCAGE_COLLECTOR_INGEST_MAX_RECORD_AGE_SECONDS": str(3650 * 86400),
    "SURBLOCAGE_COLLECTOR_FLAGS_MIN_PROBE_AGE_SECONDS": "0",
}


class CollectorProcess:
    """`python -m collector serve --db DB_URL ARGS`, logs (stderr) appended to ``log``."""

    def __init__(self, db_url: str, log: pathlib.Path, *args: str) -> None:
        self.db_url, self.log, self.args = db_url, log, args
        self.port = 0  # the first start takes a free port, announced in the log
        self.start()

    def start(self) -> CollectorProcess:
        """Start serving on the port of the last start (any free one the first time); return
        once the collector says it listens."""
        logged = len(self.log_text()) if self.log.exists() else 0
        argv = [sys.executable, "-m", "collector", "serve", "--db", self.db_url]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--no-control", *self.args]
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=ENVIRONMENT | dict(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.port = self._wait_for_port(logged)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def _wait_for_port(self, logged: int) -> int:
        """Return the port of the "collector listening" line logged past offset ``logged``."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            text = self.log_text()[logged:]
            found = re.findall(r"collector listening.*?127\.0\.0\.1:(\d+)", text)
            if found:
                return int(found[-1])
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited {self.proc.returncode}: {self.log_text()}")
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"collector did not start: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str) -> None:
        """Wait until the collector's log says ``text`` (or it exits)."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        while text not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never logged: {self.log_text()}")
            time.sleep(0.02)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (unless it has exited) and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=PATIENCE_SECONDS)

    def ids(self, probe_id: str) -> list[str]:
        """Return the id of every record the collector stored for ``probe_id`` (repeats kept)."""
        url = f"{self.url}/api/v1/measurements?probe_id={probe_id}&limit=1000"
        out: list[str] = []
        while url:
            with OPENER.open(url, timeout=5) as r:
                page = json.load(r)
            out += [m["id"] for m in page["measurements"]]
            cursor = page["next_cursor"]
            url = f"{url.split('&cursor=')[0]}&cursor={cursor}" if cursor else ""
        return out


def write_config(path: pathlib.Path, **sections: dict[str, Any]) -> str:
    """Write a collector YAML config (JSON is YAML) with generous rate limits; return its path.

    The suites submit often from one address, faster than a real probe would.
    """
    limits = {"rate_per_probe_per_minute": 1_000_000, "rate_per_source_per_minute": 1_000_000}
    doc = {"limits": {**limits, **sections.pop("limits", {})}, **sections}
    path.write_text(json.dumps(doc))
    return str(path)
