"""Processes the lab starts inside its namespaces: start, wait for readiness, stop, report.

Each process runs as ``ip netns exec NS argv`` (ip execs argv, so the pid is the server's own)
with stdout and stderr in files under the lab's work directory. A server is ready when its
stdout holds READY; if it dies first, LabError carries the tail of its stderr.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository, cwd for `python -m`


class LabError(RuntimeError):
    """The lab could not be built, or one of its servers died or never became ready."""


@dataclasses.dataclass
class Running:
    name: str
    ns: str
    popen: subprocess.Popen[bytes]
    stdout: pathlib.Path
    stderr: pathlib.Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def errors(self, tail: int = 2000) -> str:
        return self.stderr.read_text(errors="replace")[-tail:]


class Processes:
    """The set of processes of one lab, stopped together."""

    def __init__(self, logdir: pathlib.Path) -> None:
        self.logdir = logdir
        self.items: list[Running] = []

    def start(
        self, ns: str, argv: list[str], name: str, env: dict[str, str] | None = None
    ) -> Running:
        """Start argv inside netns ``ns``; its output goes to <logdir>/<name>.out and .err."""
        out, err = self.logdir / f"{name}.out", self.logdir / f"{name}.err"
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv], stdout=o, stderr=e, cwd=ROOT, env=env,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        running = Running(name, ns, popen, out, err)
        self.items.append(running)
        return running

    def wait_ready(self, running: Running, timeout: float = 20.0, marker: str = "READY") -> None:
        """Wait until the process prints ``marker``; raise LabError if it dies or takes too long."""
        deadline = time.monotonic() + timeout
        while marker not in running.output():
            if running.popen.poll() is not None:
                raise LabError(
                    f"{running.name} (in {running.ns}) exited with {running.popen.returncode} "
                    f"before it was ready; stderr:\n{running.errors()}"
                )
            if time.monotonic() > deadline:
                raise LabError(f"{running.name} not ready after {timeout}s:\n{running.errors()}")
            time.sleep(0.02)

    def check_alive(self) -> None:
        """Raise LabError naming every process that has died, with its stderr."""
        dead = [r for r in self.items if r.popen.poll() is not None]
        if dead:
            raise LabError(
                "\n".join(f"{r.name} exited {r.popen.returncode}: {r.errors(600)}" for r in dead)
            )

    def stop(self, running: Running) -> None:
        if running.popen.poll() is None:
            running.popen.terminate()
            try:
                running.popen.wait(3)
            except subprocess.TimeoutExpired:
                running.popen.kill()
                running.popen.wait(3)
        if running in self.items:
            self.items.remove(running)

    def stop_all(self) -> None:
        for running in list(self.items):
            if running.popen.poll() is None:
                running.popen.terminate()
        for running in list(self.items):
            self.stop(running)
