"""Build the lab and print its techniques table; with --run, measure each one with the CLI.

usage: python -m tests.lab.report [--table] [--isp a] [--delay-ms N] [--only NAME ...]
By default a collector serves the control from the internet ns, `surblocage-probe check --json`
runs in the ISP's first probe ns for each technique, and each verdict is printed next to the one
expected by docs/spec.md ("!!" marks a difference). --table only prints what each technique plants
and expects. Exit status 1 when a verdict differs (or the lab cannot be built), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence

from tests.lab import plan
from tests.lab.processes import LabError, Running
from tests.lab.technique import Expect, Technique
from tests.lab.topology import Lab, unusable_reason


def planted_summary(t: Technique) -> str:
    """Say in one line what a technique plants (ISP side first)."""
    parts = [f"dns {d}->{a}" for d, a in t.isp_dns.items()]
    parts += [f"{r.kind} {r.addr or r.match}" for r in t.rules]
    parts += [f"proxy blocks {h}" for h in t.proxy_block]
    parts += [f"inject {d}->{a}" for d, a in t.inject.items()]
    parts += [f"site {s.host}{s.path} {s.probe_status or s.status}" for s in t.sites]
    parts += [f"{li.addr} cert={li.cert}" for li in t.listeners]
    if t.resolver != "isp":
        parts.append(f"resolver={t.resolver}")
    if t.control != "collector":
        parts.append(f"control={t.control}")
    if not t.zone:
        parts.append("absent from the zone (NXDOMAIN everywhere)")
    return "; ".join(parts) or "(nothing: baseline)"


def verdict_text(v: Expect | dict[str, object] | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, Expect):
        v = {"status": v.status, "method": v.method, "detail": v.detail, "blockpage": v.blockpage}
    text = "/".join(str(v[k]) for k in ("status", "method", "detail") if v.get(k))
    return text + (f" [{v['blockpage']}]" if v.get("blockpage") else "")


def start_collector(lab: Lab) -> Running | None:
    """Start the collector as the control vantage in the internet ns, or None if it fails."""
    argv = [
        str(pathlib.Path(sys.executable).with_name("surblocage-collector")), "serve",
        "--db", f"sqlite:///{lab.workdir}/collector.db",
        "--listen", f"{lab.collector_addr}:{lab.collector_port}",
        "--resolver", lab.public_resolver, "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network,
    ]  # fmt: skip
    try:
        # the lab's probes run `check` without registering: the lab's control serves anyone
        env = {**os.environ, "SURBLOCAGE_COLLECTOR_CONTROL_PUBLIC": "true"}
        return lab.spawn(
            "internet", argv, "collector", (lab.collector_addr, lab.collector_port), env=env
        )
    except LabError as e:
        print(f"collector did not start, measuring without a control: {e}", file=sys.stderr)
        return None


def measure(lab: Lab, t: Technique, letter: str, control: str | None) -> list[dict[str, object]]:
    """Run the CLI for one technique in the ISP's first probe ns; return the verdicts."""
    done = lab.exec(f"probe_{letter}", [*lab.probe_argv(t, letter, control), "--quiet"], 120)
    verdicts = []
    for line in done.stdout.splitlines():
        try:
            verdicts.append(json.loads(line).get("verdict") or {})
        except json.JSONDecodeError:
            continue
    if not verdicts:
        verdicts.append({"status": f"CLI exit {done.returncode}: {done.stderr.strip()[-200:]}"})
    return verdicts


def report(lab: Lab, letter: str, run: bool, only: Sequence[str]) -> int:
    techniques = [t for t in lab.techniques if not only or t.name in only]
    collector = start_collector(lab) if run else None
    control = lab.control_url if collector else None
    differ = 0
    print(f"{'technique':24} {'expected':46} {'got':46} planted (ISP {letter})")
    for t in techniques:
        want = lab.expected(t, letter)
        got = measure(lab, t, letter, control) if run else []
        ok = all(want.matches(g) for g in got)
        differ += not ok
        shown = ", ".join(sorted({verdict_text(g) for g in got})) if run else ""
        mark = "" if not run else ("  " if ok else "!!")
        print(f"{mark}{t.name:24} {verdict_text(want):46} {shown:46} {planted_summary(t)}")
    if run:
        print(f"\n{len(techniques) - differ}/{len(techniques)} verdicts as expected")
    return 1 if differ else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab.report", description=__doc__)
    p.add_argument("--table", action="store_true", help="print the table, measure nothing")
    p.add_argument("--isp", default="a", help="the ISP whose probe measures (default a)")
    p.add_argument("--delay-ms", type=float, default=0, help="added RTT on each ISP uplink")
    p.add_argument("--only", nargs="*", default=[], metavar="NAME", help="these techniques")
    args = p.parse_args(argv)
    reason = unusable_reason()
    if reason:
        print(f"cannot build the lab: {reason}", file=sys.stderr)
        return 1
    with Lab(isps=plan.TEST_ISPS, delay_ms=args.delay_ms) as lab:
        return report(lab, args.isp, not args.table, args.only)


if __name__ == "__main__":
    sys.exit(main())
