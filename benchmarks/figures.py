"""How repeated measurements become printed figures: median, spread, percentiles, the machine."""

from __future__ import annotations

import os
import pathlib
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence


def summary(values: Sequence[float], unit: str = "", digits: int = 2) -> str:
    """Return "median (min-max, n=N)" for a series of runs."""
    if not values:
        return "no runs"
    med = statistics.median(values)
    fmt = f"{{:.{digits}f}}"
    return (
        f"{fmt.format(med)}{unit} ({fmt.format(min(values))}-{fmt.format(max(values))}, "
        f"n={len(values)})"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Return the p-th percentile (0-100) by the nearest-rank method (p99 of 200 = the 198th)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def machine() -> str:
    """Return one line naming the machine: CPUs, memory, CPU model, kernel, Python."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
    return (
        f"{os.cpu_count()} CPUs ({model}), {kib / 1048576:.1f} GiB RAM, "
        f"kernel {platform.release()}, Python {platform.python_version()}"
    )


def load() -> str:
    """Return the 1/5/15-minute load averages: the machine is shared, so say how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def revision() -> str:
    """Return the revision measured: $SURBLOCAGE_BENCH_REVISION (a snapshot made with `git
    archive`), else the checkout's HEAD, marked when probe/ or collector/ hold uncommitted work."""
    if os.environ.get("SURBLOCAGE_BENCH_REVISION"):
        return os.environ["SURBLOCAGE_BENCH_REVISION"]
    git = ["git", "-C", str(pathlib.Path(__file__).resolve().parents[1])]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "probe", "collector"], capture_output=True, text=True
    )
    mark = " + uncommitted changes in probe/ or collector/" if dirty.stdout.strip() else ""
    return (head.stdout.strip() or "?") + mark


def header(title: str) -> None:
    """Print the benchmark's title, the machine and the revision it measures."""
    rev = revision()
    print(f"== {title}")
    print(f"   machine: {machine()}")
    print(f"   revision {rev}, {load()}, argv: {' '.join(sys.argv)}")
    sys.stdout.flush()
