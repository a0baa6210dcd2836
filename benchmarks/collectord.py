"""The collector as a benchmarked process: a scratch database, `serve` on a free port, its costs.

Databases are the benchmark's own: a SQLite file in a temporary directory, or a PostgreSQL
database ``sb_bench_<pid>_<name>`` on $SURBLOCAGE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards. The collector runs from
this checkout's venv with a config that lifts the per-probe and per-source rate limits (the
submitters are a few probes on one address) and turns the control off; the rest is default,
logging included.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import psycopg

from benchmarks import rig

COLLECTOR = str(pathlib.Path(sys.executable).with_name("surblocage-collector"))
PG_ADMIN = os.environ.get("SURBLOCAGE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONFIG = """\
control:
  enabled: false
limits:
  rate_per_probe_per_minute: 100000000
  rate_per_source_per_minute: 100000000
server:
  max_connections: 100000
  max_connections_per_client: 100000
ingest:
  max_record_age_seconds: 315360000
"""


@contextlib.contextmanager
def scratch_database(kind: str, name: str, keep: bool = False) -> Iterator[str]:
    """Yield the URL of a new, empty database of ``kind`` (sqlite or postgresql); drop it after."""
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"sb-bench-{name}-", dir=os.environ.get("TMPDIR"))
        try:
            yield f"sqlite:///{directory}/collector.db"
        finally:
            if not keep:
                shutil.rmtree(directory, ignore_errors=True)
        return
    db = f"sb_bench_{os.getpid()}_{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    try:
        yield f"{PG_ADMIN.rpartition('/')[0]}/{db}"
    finally:
        if not keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def migrate(url: str) -> None:
    """Create the schema with the collector's own command."""
    done = subprocess.run([COLLECTOR, "migrate", "--db", url], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"migrate {url}: {done.stderr.strip()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """One `surblocage-collector serve` process on 127.0.0.1 (a context manager)."""

    def __init__(
        self, url: str, workdir: pathlib.Path, variant: str | None = None, config: str = CONFIG
    ) -> None:
        self.url = url
        self.config = config  # the YAML it serves with
        self.variant = variant  # a what-if of benchmarks/collector_variants.py
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Collector:
        config = self.workdir / f"collector-{self.port}.yaml"
        config.write_text(self.config)
        log = (self.workdir / f"collector-{self.port}.log").open("wb")
        argv = [COLLECTOR, "serve", "--config", str(config), "--db", self.url,
                "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        if self.variant is not None:
            argv[:1] = [sys.executable, "-m", "benchmarks.collector_variants", self.variant]
        self.popen = subprocess.Popen(argv, stdout=log, stderr=log, cwd=rig.ROOT)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_seconds: float = 30) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                sys.exit(f"collector exited {self.popen.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"collector not ready after {timeout_seconds}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / f"collector-{self.port}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def cpu_seconds(self) -> float:
        return rig.cpu_seconds(self.pid)

    def rss_mib(self, field: str = "VmHWM") -> float:
        """Return the peak (VmHWM) or current (VmRSS) resident memory, in MiB."""
        with open(f"/proc/{self.pid}/status") as f:
            line = next(line for line in f if line.startswith(field))
        return int(line.split()[1]) / 1024

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(35)  # it lets requests in flight finish (up to 30 s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
