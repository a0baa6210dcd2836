"""What-if probes: `check` with other step maps, to measure what would close the gap to the bound.

usage: python -m benchmarks.variants VARIANT check --json [check options] URL...
Variants go through the one seam probe/flow.py offers (the step map); product code is unchanged:
- shipped: the default steps (the same as `surblocage-probe check`);
- no_listen: the DNS step does not listen for an injected second reply at all (the shipped
  flow listens in the background while the next steps run): what that listen still costs.
(Until revision d15c4fa a variant "one_connection" stubbed out the separate TCP and TLS
connections; the shipped connection step now measures the three layers on one connection.)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from probe import cli
from probe.flow import DEFAULT_STEPS, Flow, StepMap
from probe.runner import Runner
from probe.steps import dns


async def dns_no_listen(spec: dns.DNSSpec) -> object:
    return await dns.measure(dataclasses.replace(spec, listen_extra_seconds=0.0))


VARIANTS: dict[str, StepMap] = {
    "shipped": DEFAULT_STEPS,
    "no_listen": {k: v for k, v in DEFAULT_STEPS.items() if k != "dns_listening"}
    | {"dns": dns_no_listen},
}


async def check(args: argparse.Namespace, steps: StepMap) -> int:
    """Do what `surblocage-probe check --json` does, with ``steps`` as the flow's step map."""
    cfg = cli.load_config(args, cli.OPTIONS)
    targets, dns_only = cli.check_targets(args, cfg)
    opts = cli.flow_options(cfg)
    fps = cli.load_fingerprints(cfg.fingerprints)
    runner = Runner(Flow(opts, steps), cli.probe_info(cfg, opts), None, fps, cfg.concurrency)
    for m in await runner.run(targets, dns_only):
        print(m.to_json())
    return 0


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in VARIANTS:
        print(f"usage: python -m benchmarks.variants {{{','.join(VARIANTS)}}} check ...")
        return 2
    args = cli.build_parser().parse_args(argv[1:])
    if args.command != "check" or args.control_enabled is not False:
        print("variants run `check --no-control` only", file=sys.stderr)
        return 2
    return asyncio.run(check(args, VARIANTS[argv[0]]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
