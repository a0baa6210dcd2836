"""The learning of block signatures: DB work for one background pass of positive controls.

Usage: python -m benchmarks.learned [--db URL] [--rounds N] [--probes N] [--paths N]

A migrated database (a fresh SQLite file by default) learns, round after round, one cycle of
``--probes`` probes of one network, each with one record of each of 4 positive controls whose
``--paths`` resolver paths lie (one address each, the control resolving elsewhere): the time
measured is ``learned.learn`` over those records in one write transaction, as the background
pass runs it. Observations and signatures grow round after round as in service.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

from benchmarks import figures
from collector.judge import learned, open_store
from collector.store import migrate

CONTROLS = ("ctl-a", "ctl-b", "ctl-c", "ctl-d")


def _doc(service: str, paths: int) -> dict[str, object]:
    dns = [
        {"resolver": f"10.0.{i}.53", "qtype": "A", "rcode": "NOERROR", "answers": ["127.0.0.1"],
         "failure": None, "path": f"path{i}", "name": f"{service}.example"}
        for i in range(paths)
    ]  # fmt: skip
    control = {"dns": [{"qtype": "A", "answers": ["203.0.113.5"], "name": None}]}
    return {"target": {"domain": f"{service}.example"}, "dns": dns, "control": control}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--rounds", type=int, default=7, help="cycles learned (7)")
    parser.add_argument("--probes", type=int, default=50, help="probes a cycle (50)")
    parser.add_argument("--paths", type=int, default=7, help="resolver paths a record (7)")
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{pathlib.Path(tmp.name) / 'learned.db'}"
    migrate(url)
    store = open_store(url)
    now = datetime.datetime.now(datetime.UTC)
    times, per_record = [], []
    for n in range(args.rounds):
        at = now - datetime.timedelta(hours=args.rounds - n)
        seen = [
            learned.Seen(str(uuid.uuid4()), f"probe-{p}", 64500, "Bench", c, at,
                         _doc(c, args.paths))
            for p in range(args.probes) for c in CONTROLS
        ]  # fmt: skip
        t0 = time.perf_counter()
        written = store.write(learned.learn, seen, set(CONTROLS))
        times.append((time.perf_counter() - t0) * 1000)
        per_record.append(times[-1] / len(seen))
        print(f"round {n + 1}: {len(seen)} records, {written} writes, {times[-1]:.0f} ms",
              file=sys.stderr)  # fmt: skip
    store.close()
    figures.header("learned signatures: one background pass of a cycle's positive controls")
    print(
        f"database: {url.split(':', 1)[0]}; {args.probes} probes x {len(CONTROLS)} controls x "
        f"{args.paths} paths; n={args.rounds}"
    )
    print(f"learn ms a pass: median {statistics.median(times):.0f}, {figures.summary(times)}")
    print(f"learn ms a record: median {statistics.median(per_record):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
