"""Export rate: `surblocage-collector export` (JSON Lines, CSV, Parquet) and GET /api/v1/export.

Both export the records of the last ``days`` days (about 100,000 records): the command
to a file in a scratch directory (wall time, CPU and peak RSS from wait4), the streamed route
to the client, which counts the lines as they arrive.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import re
import sys
import tempfile
import time
from typing import Any

import aiohttp

from benchmarks import collectord, queries, rig

FORMATS = ("jsonl", "csv", "parquet")
_WRITTEN = re.compile(r"(\d+) records written")


def command(url: str, fmt: str, since: str) -> dict[str, Any]:
    """Run the export command once; return records, seconds, CPU seconds, peak RSS, bytes."""
    with tempfile.TemporaryDirectory(prefix="sb-bench-export-") as tmp:
        out = pathlib.Path(tmp) / f"out.{fmt}"
        argv = [collectord.COLLECTOR, "export", "--db", url, "--format", fmt, "--since", since,
                "--output", str(out)]  # fmt: skip
        cost = rig.run_measured(None, argv)
        found = _WRITTEN.findall(cost.stderr)
        if cost.returncode != 0 or not found:
            sys.exit(f"export {fmt} exited {cost.returncode}: {cost.stderr[-1000:]}")
        return {
            "records": int(found[-1]), "wall": cost.wall_seconds, "cpu": cost.cpu_seconds,
            "rss": cost.peak_rss_mib, "bytes": out.stat().st_size,
        }  # fmt: skip


async def route(base: str, fmt: str, since: str) -> dict[str, Any]:
    """Stream GET /api/v1/export once; return records (lines), seconds and bytes."""
    lines = size = 0
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        params = {"format": fmt, "since": since}
        async with session.get(f"{base}/api/v1/export", params=params) as r:
            if r.status != 200:
                sys.exit(f"/api/v1/export answered {r.status}")
            async for chunk in r.content.iter_chunked(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
        wall = time.perf_counter() - t0
    header = 1 if fmt == "csv" else 0
    return {"records": lines - header, "wall": wall, "bytes": size}


def measure(url: str, base: str, now: datetime.datetime, days: float) -> None:
    """Print the export rate of the command (each format) and of the streamed route."""
    since = queries.rfc3339(now - datetime.timedelta(days=days))
    for fmt in FORMATS:
        r = command(url, fmt, since)
        print(
            f"   export command {fmt:<8} {r['records'] / r['wall']:8.0f} records/s "
            f"({r['records']} in {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak RSS "
            f"{r['rss']:.0f} MiB, {r['bytes'] / 1e6:.0f} MB)",
            flush=True,
        )
    for fmt in ("jsonl", "csv"):
        r = asyncio.run(route(base, fmt, since))
        print(
            f"   GET /api/v1/export {fmt:<5} {r['records'] / r['wall']:8.0f} records/s "
            f"({r['records']} in {r['wall']:.1f} s, {r['bytes'] / 1e6:.0f} MB)",
            flush=True,
        )
