"""Where a benchmarked process spends its CPU: one run under cProfile, the top functions printed.

usage (what profile_probe runs in the probe namespace):
    python -m benchmarks.profiling OUT.prof MODULE ARGS...
runs ``python -m MODULE ARGS...`` under cProfile with a CPU-time clock (time.process_time), so
that time spent waiting on the network (epoll) does not count as a function's own time.
"""

from __future__ import annotations

import cProfile
import io
import pathlib
import pstats
import runpy
import sys
import tempfile
import time

from benchmarks import rig
from tests.lab.topology import Lab


def print_top(path: pathlib.Path, limit: int = 25) -> None:
    """Print the functions with the most own CPU time, then the most cumulative CPU time."""
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(limit)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        total = next((line for line in lines if "function calls" in line), "")
        print(f"   -- top {limit} by {key} CPU ({total.strip()})")
        for line in lines[start : start + limit + 1]:
            print(f"   {line}")
    sys.stdout.flush()


def profile_probe(lab: Lab, urls: list[str], concurrency: int) -> None:
    """Run the probe once under cProfile in the probe namespace and print where its CPU went."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "probe.prof"
        argv = rig.probe_argv(lab, urls, concurrency, None)
        profiled = [sys.executable, "-m", "benchmarks.profiling", str(path), "probe", *argv[1:]]
        cost = rig.run_measured(lab.ns("probe_a"), profiled)
        if cost.returncode != 0:
            sys.exit(f"profiled probe exited {cost.returncode}: {cost.stderr[-2000:]}")
        print(
            f"-- cProfile (CPU clock) of one cycle at c={concurrency}: process "
            f"{cost.wall_seconds:.2f} s, CPU {cost.cpu_seconds:.2f} s (profiling slows it)"
        )
        print_top(path)


def main(argv: list[str]) -> int:
    """Run ``python -m MODULE ARGS`` under a CPU-clock profiler; write the stats to OUT."""
    out, module, *args = argv
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.process_time)
    code: object = 0
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
