"""The benchmark lab and its meters: honest and blackholed targets, process costs, byte counters.

The lab is tests/lab's (`Lab`), built with one ISP "a" and no censorship technique but
``dark_technique``: N names, each on its own address (10.200.3.100 and up), each address
DROPped by the ISP's router, so that a quarter of a watchlist can be blackholed while the other
names (``*.bench.example`` -> the CDN address 10.200.3.10) stay reachable. The NFQUEUE delayer
of the lab adds the round-trip time on the ISP's uplink, so the probe's path to its resolver's
upstream and to every web host crosses it; the probe to its ISP resolver does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from tests.lab.netns import exec_in
from tests.lab.plan import CDN, bench_urls
from tests.lab.technique import Expect, IspSpec, Name, Rule, Technique
from tests.lab.topology import Lab, unusable_reason

PREFIX = "sbbench"  # its own namespaces, never another lab's (other runs may be up)
DARK_SUFFIX = "dark.example"
DARK_FIRST_OCTET = 100  # 10.200.3.100 ... : one dropped address per blackholed name
PROBE = str(pathlib.Path(sys.executable).with_name("surblocage-probe"))
ROOT = pathlib.Path(__file__).resolve().parents[1]  # cwd of every process: `-m benchmarks.*`
TIME = "/usr/bin/time"  # GNU time (Debian package "time")


def dark_names(count: int) -> list[str]:
    return [f"d{i:04d}.{DARK_SUFFIX}" for i in range(count)]


def dark_technique(count: int) -> Technique:
    """Return a technique planting ``count`` names on distinct addresses, each one dropped."""
    if count > 150:
        raise ValueError("at most 150 blackholed names (10.200.3.100-249)")
    zone = tuple(
        Name(n, (f"10.200.3.{DARK_FIRST_OCTET + i}",)) for i, n in enumerate(dark_names(count))
    )
    rules = tuple(Rule("drop", n.a[0], why="benchmark blackhole") for n in zone)
    expect = Expect("blocked", "tcp_ip", "timeout", why="every packet to the address dropped")
    return Technique("bench_blackhole", (), expect, zone=zone, rules=rules)


def cycle_urls(count: int, blackhole_every: int = 0) -> list[str]:
    """Return ``count`` URLs; with ``blackhole_every`` = 4, every 4th one is a dropped name."""
    honest = iter(bench_urls(count))
    dark = iter(dark_names(count))
    out = []
    for i in range(count):
        if blackhole_every and i % blackhole_every == blackhole_every - 1:
            out.append(f"https://{next(dark)}/")
        else:
            out.append(next(honest))
    return out


def build_lab(delay_ms: float, dark_count: int) -> Lab:
    """Build the benchmark lab; exit with the reason when this machine cannot."""
    reason = unusable_reason()
    if reason:
        sys.exit(f"cannot build the lab: {reason}")
    techniques = (dark_technique(dark_count),) if dark_count else ()
    return Lab(PREFIX, isps=[IspSpec("a")], delay_ms=delay_ms, techniques=techniques).up()


def probe_argv(lab: Lab, urls: list[str], concurrency: int, timeout: float | None) -> list[str]:
    """Return `surblocage-probe check --json` for ``urls`` through ISP a's resolver, no control."""
    argv = [
        PROBE, "check", "--json", "--quiet", "--no-control", "--resolver", lab.resolver("a"),
        "--ca-file", lab.ca_file, "--allow-network", lab.allow_network,
        "--concurrency", str(concurrency),
    ]  # fmt: skip
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    return [*argv, *urls]


def variant_argv(lab: Lab, urls: list[str], concurrency: int, variant: str) -> list[str]:
    """Return the same `check` through benchmarks/variants.py with another step map."""
    argv = probe_argv(lab, urls, concurrency, None)
    return [sys.executable, "-m", "benchmarks.variants", variant, *argv[1:]]


@dataclasses.dataclass(frozen=True)
class ProcessCost:
    """What one finished process cost: wall time, user+sys CPU, peak RSS, and its output."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(ns: str | None, argv: list[str], timeout: float = 1800) -> ProcessCost:
    """Run argv (in netns ``ns`` unless None) and return its cost, measured by GNU time.

    GNU time forks the command from its own small process: a child forked straight from this
    (large) one would count our resident pages in its peak RSS (Linux keeps the high-water
    mark across exec). `ip netns exec` execs the command, so the figures are the command's.
    """
    inner = argv if ns is None else ["ip", "netns", "exec", ns, *argv]
    with tempfile.TemporaryDirectory(prefix="sb-bench-run-") as tmp:
        usage = pathlib.Path(tmp) / "usage"
        timed = [TIME, "-f", "%M %U %S", "-o", str(usage), *inner]
        started = time.perf_counter()
        done = subprocess.run(timed, capture_output=True, cwd=ROOT, timeout=timeout, check=False)
        wall = time.perf_counter() - started
        fields = usage.read_text().split()[-3:]  # a failed command adds a line before them
    rss_kib, user, system = int(fields[0]), float(fields[1]), float(fields[2])
    return ProcessCost(
        wall, user + system, rss_kib / 1024, done.returncode,
        done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"),
    )  # fmt: skip


def wire_bytes(lab: Lab, role: str = "probe_a", iface: str = "eth0") -> int:
    """Return received + sent bytes so far on ``iface`` of a lab namespace (/proc/net/dev)."""
    text = exec_in(lab.ns(role), ["cat", "/proc/net/dev"], check=True).stdout
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == iface:
            fields = rest.split()
            return int(fields[0]) + int(fields[8])
    raise RuntimeError(f"no interface {iface} in {lab.ns(role)}")


def cpu_seconds(pid: int) -> float:
    """Return user+sys CPU seconds a live process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_lab(lab: Lab, cpus: str) -> None:
    """Hold every thread of the lab's own servers on ``cpus`` (taskset), for a what-if."""
    for r in lab.processes.items:
        if r.popen.poll() is None:
            argv = ["taskset", "-a", "-p", "-c", cpus, str(r.popen.pid)]
            subprocess.run(argv, capture_output=True, check=True)


def lab_cpu(lab: Lab) -> dict[str, float]:
    """Return CPU seconds used so far by each of the lab's own servers (web, DNS, delayer)."""
    return {r.name: cpu_seconds(r.popen.pid) for r in lab.processes.items if r.popen.poll() is None}


async def _connect_times(host: str, port: int, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        _, writer = await asyncio.open_connection(host, port)
        out.append((time.perf_counter() - t0) * 1000)
        writer.close()
        await writer.wait_closed()
    return out


@contextlib.contextmanager
def rtt_during(lab: Lab) -> Iterator[list[float]]:
    """Measure the probe's round trip to the CDN (TCP connects, benchmarks/rtt_probe.py) while
    the block runs; the list holds the connect times (ms) once the block is done."""
    argv = ["ip", "netns", "exec", lab.ns("probe_a"), sys.executable, "-m",
            "benchmarks.rtt_probe", CDN, "443"]  # fmt: skip
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT, text=True)
    assert popen.stdout is not None
    popen.stdout.readline()  # "ready"
    found: list[float] = []
    try:
        yield found
    finally:
        popen.send_signal(signal.SIGTERM)
        out, _ = popen.communicate(timeout=30)
        found += json.loads(out.strip().splitlines()[-1]) if out.strip() else []


def measured_rtt_ms(lab: Lab, count: int = 20) -> float:
    """Return the median TCP connect time from the probe to the CDN: one round trip."""
    return statistics.median(lab.run("probe_a", _connect_times, CDN, 443, count))
