"""Test harness of the probe daemon: a DNS server, and collector and probe processes.

Everything listens on 127.0.0.1. The DNS server runs in a thread so that the probe subprocesses
are served whatever the test is doing (waiting, killing, reading).
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
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOMAIN = "surblocage.test"  # no resolver knows it: only our DNS server answers
PATIENCE_SECONDS = 15.0
# urllib would use $http_proxy: the tests talk to loopback only
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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


# --- DNS ----------------------------------------------------------------------------------------


@dataclass
class DNSServer:
    """Answers NXDOMAIN for every name, except names in ``silent`` (no answer: a slow target)."""

    port: int = 0
    silent: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> DNSServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, addr = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text(omit_final_dot=True).lower()
            self.queries.append(name)
            if name in self.silent:
                continue
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.NXDOMAIN)
            try:
                self._sock.sendto(reply.to_wire(), addr)
            except OSError:
                return  # closed meanwhile

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()


def watchlist(names: Iterable[str]) -> dict[str, Any]:
    """A watchlist with one service a name, measured at https://<name>.surblocage.test/."""
    return {
        "services": [
            {"id": n, "name": n, "category": "general", "urls": [f"https://{n}.{DOMAIN}/"]}
            for n in names
        ]
    }


# --- the collector ------------------------------------------------------------------------------


class CollectorProcess:
    """`surblocage-collector serve` on SQLite, restartable on the same port and database."""

    def __init__(self, tmp: pathlib.Path, names: Iterable[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "collector.db"
        self.watchlist = tmp / "collector-watchlist.yaml"
        self.watchlist.write_text(yaml.safe_dump(watchlist(names)))
        self.log = tmp / "collector.log"
        self.config = tmp / "collector.yaml"  # the suite submits often from one address
        limits = {"rate_per_probe_per_minute": 100_000, "rate_per_source_per_minute": 100_000}
        self.config.write_text(yaml.safe_dump({"limits": limits}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        args = [
            sys.executable, "-m", "collector", "serve", "--config", str(self.config),
            "--listen", f"127.0.0.1:{self.port}", "--db", f"sqlite:///{self.db}",
            "--no-control", "--watchlist", str(self.watchlist),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
        wait_until(self.healthy, "the collector to answer /healthz")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"collector exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            with OPENER.open(self.url + "/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=PATIENCE_SECONDS)

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
