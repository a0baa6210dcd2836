"""`make run`: the main job on the embedded default, SQLite.

1. a collector on SQLite (var/demo/collector.db) serving the French watchlist and the control;
2. one probe cycle against it (`surblocage-probe run --once`): register, measure, spool, submit;
3. a summary of what the collector stored, and where to look next;
4. the collector keeps serving until Ctrl-C (SURBLOCAGE_DEMO_EXIT=1 stops after the summary).

Environment (for labs and tests): SURBLOCAGE_DEMO_DIR (var/demo), SURBLOCAGE_DEMO_LISTEN
(127.0.0.1:8080), SURBLOCAGE_DEMO_WATCHLIST (configs/watchlist.yaml), SURBLOCAGE_DEMO_PROBE_ARGS
and SURBLOCAGE_DEMO_COLLECTOR_ARGS (extra options, e.g. --resolver, --ca-file, --allow-network).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent


def env(name: str, default: str) -> str:
    return os.environ.get(f"SURBLOCAGE_DEMO_{name}", default)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"demo: the collector exited with status {proc.returncode}")
        try:
            get_json(f"{base}/healthz")
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.2)
    sys.exit(f"demo: the collector did not answer on {base} within {seconds:.0f} s")


def summary(base: str) -> str:
    """Count the stored records by verdict, paging through the research API."""
    counts: collections.Counter[str] = collections.Counter()
    cursor = None
    while True:
        page = get_json(
            f"{base}/api/v1/measurements?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        )
        for m in page["measurements"]:
            v = m["verdict"]
            counts["/".join(x for x in (v["status"], v["method"], v["detail"]) if x)] += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    lines = [f"  {n:5d}  {verdict}" for verdict, n in counts.most_common()]
    return f"{sum(counts.values())} records stored:\n" + "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stop the collector on SIGTERM too
    work = ROOT / env("DIR", "var/demo")
    work.mkdir(parents=True, exist_ok=True)
    listen = env("LISTEN", "127.0.0.1:8080")
    base = f"http://{listen}"
    watchlist = env("WATCHLIST", str(ROOT / "configs" / "watchlist.yaml"))
    collector = subprocess.Popen(
        [
            str(BIN / "surblocage-collector"),
            "serve",
            "--listen",
            listen,
            "--db",
            f"sqlite:///{work / 'collector.db'}",
            "--watchlist",
            watchlist,
            *shlex.split(env("COLLECTOR_ARGS", "")),
        ],
        stderr=open(work / "collector.log", "ab"),
    )
    try:
        wait_healthy(base, collector)
        print(f"demo: collector on {base} (SQLite {work / 'collector.db'}; log collector.log)")
        print("demo: one probe cycle over the watchlist (register, measure, spool, submit)...")
        probe = subprocess.run(
            [
                str(BIN / "surblocage-probe"),
                "run",
                "--once",
                "--collector",
                base,
                "--state-dir",
                str(work / "probe"),
                *shlex.split(env("PROBE_ARGS", "")),
            ]
        )
        if probe.returncode not in (0, 1):
            return probe.returncode
        print("demo:", summary(base))
        print(
            f"demo: query {base}/api/v1/measurements, export with "
            f"`surblocage-collector export --db sqlite:///{work / 'collector.db'}`, "
            f"metrics at {base}/metrics"
        )
        if os.environ.get("SURBLOCAGE_DEMO_EXIT") == "1":
            return 0
        print("demo: the collector keeps serving; Ctrl-C to stop")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        collector.terminate()
        collector.wait(30)


if __name__ == "__main__":
    sys.exit(main())
