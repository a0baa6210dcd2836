"""Where a benchmarked process spends its CPU: one run under cProfile, the top functions printed.

usage (what profile_probe runs in the probe namespace):
    python -m benchmarks.profiling OUT.prof MODULE ARGS...
runs ``python -m MODULE ARGS...`` under cProfile with a CPU-time clock (time.process_time), so
that time spent waiting on the network (epoll) does not count as a function's own time.
"""

from __future__ import annotations

import collections
import cProfile
import io
import pathlib
import pstats
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

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


PY_SPY = pathlib.Path(sys.executable).with_name("py-spy")


def start_py_spy(pid: int, out: pathlib.Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling every thread of ``pid`` (py-spy, collapsed stacks) until stopped."""
    if not PY_SPY.exists():
        sys.exit(f"{PY_SPY} missing: .venv/bin/pip install py-spy")
    argv = [str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
            "--output", str(out), "--nonblocking", "--threads"]  # fmt: skip
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached
    return popen


def stop_py_spy(popen: subprocess.Popen[bytes]) -> None:
    popen.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    popen.communicate(timeout=60)


def print_collapsed(path: pathlib.Path, limit: int = 25, focus: Sequence[str] = ()) -> None:
    """Print the functions sampled most by own samples, then the share of the samples with each
    ``focus`` function anywhere on the stack (a name as py-spy spells it: "Store._write")."""
    own: collections.Counter[str] = collections.Counter()
    by_name: collections.Counter[str] = collections.Counter()  # any line of the function
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("thread ", "process "))]
        n = int(count)
        if not frames or _idle(frames[-1]):
            continue
        total += n
        own[_short(frames[-1])] += n
        for name in {f.split(" (")[0] for f in frames}:
            by_name[name] += n
    print(f"   -- py-spy: {total} busy samples (idle waits left out)")
    print(f"   top {limit} functions by own samples:")
    for name, n in own.most_common(limit):
        print(f"   {100 * n / max(total, 1):5.1f}%  {name}")
    if focus:
        print("   share of the busy samples with this function on the stack:")
    for wanted in focus:
        print(f"   {100 * by_name[wanted] / max(total, 1):5.1f}%  {wanted}")
    sys.stdout.flush()


def _short(frame: str) -> str:
    """'insert (collector/store/measurements.py:170)' -> 'insert (measurements.py:170)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def _idle(frame: str) -> bool:
    return any(w in frame for w in ("select (selectors.py", "wait (threading.py", "_worker ("))
