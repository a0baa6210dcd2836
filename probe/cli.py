"""The `surblocage-probe` commands (docs/spec.md): arguments, configuration, output, exit codes.

Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or configuration, with one line
on standard error that names the argument, file or key at fault (never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from probe import __version__, config, fingerprints, learned, logs, watchlist
from probe.client import CollectorClient, CollectorUnavailable
from probe.daemon import identity
from probe.diagnostics import Diagnoser
from probe.diagnostics import Settings as DiagnosticSettings
from probe.diagnostics.platform import WHY as DIAGNOSTICS_OFF
from probe.flow import Flow, FlowOptions
from probe.output import InOrder, Progress, render_sweep, render_table, use_colour
from probe.record import Measurement, ProbeInfo, Target
from probe.runner import Runner
from probe.settings import Parser, UsageError, add_off_switch, overrides_from
from probe.steps import tls

PROG = "surblocage-probe"
# `check` imports only what it measures with: the census, the sweep and the daemon's modules are
# imported by the commands that use them, so that the first packet leaves sooner (each `check` is
# a new process; `python -X importtime -m probe check ...` shows what is left)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description=(
            "Measure how services are reached from this line, layer by layer (DNS, TCP, TLS, "
            "HTTP), "
            "and tell which layer interferes. See docs/spec.md for the record and the verdicts."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    check = sub.add_parser(
        "check",
        help="measure now and print a table (or JSON Lines)",
        description="Measure targets now. A target is a domain "
        "(measured as https://DOMAIN/) or an http(s) URL.",
    )
    check.add_argument("targets", nargs="*", metavar="URL_OR_DOMAIN")
    check.add_argument(
        "--watchlist", metavar="FILE", help="measure every service of this watchlist file too"
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print one JSON record a target (JSON Lines), in input order",
    )
    check.add_argument("--quiet", action="store_true", help="no progress on standard error")
    check.add_argument(
        "--sweep",
        action="store_true",
        help="instead of targets, sweep the addresses the collector publishes (the census: TCP "
        "and a TLS handshake to each) and print the entries (the sweep documents with --json); "
        "nothing is uploaded",
    )
    check.add_argument(
        "--collector", metavar="URL", help="the collector's base URL (collector.url), for --sweep"
    )
    check.add_argument(
        "--fingerprints",
        action="append",
        default=[],
        metavar="FILE",
        help="extra block-page signatures (YAML, or OONI's CSV); repeatable",
    )
    add_measuring_options(check)
    add_daemon_commands(sub)
    return p


def add_daemon_commands(sub: Any) -> None:
    """Add `run`, `register` and `status` (docs/spec.md) to the command parsers."""
    _add_run(sub)
    _add_register(sub)
    _add_status(sub)


def _add_run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="the daemon: measure the watchlist on a schedule and submit to the collector",
        description="Measure the watchlist on a schedule (with jitter, busy windows and budgets "
        "from --config), spool every record durably and submit it to the collector, until "
        "SIGTERM or SIGINT. --once: one cycle, submit, exit.",
    )
    run.add_argument("--once", action="store_true", help="one cycle, submit, exit")
    run.add_argument("--watchlist", metavar="FILE", help="measure this file, not the collector's")
    run.add_argument("--quiet", action="store_true", help="no progress on standard error")
    add_off_switch(
        run,
        "--no-sweep",
        "census_enabled",
        help="no census sweep after the watchlist (census.enabled: false)",
    )
    run.add_argument(
        "--cycle-deadline",
        type=_positive_float,
        metavar="SECONDS",
        help="abandon a cycle running longer (default: from the watchlist's size and timeouts)",
    )
    run.add_argument(
        "--retry-max",
        type=_positive_float,
        default=900.0,
        metavar="SECONDS",
        help="longest wait between two upload attempts (default 900)",
    )
    _add_identity_options(run)
    add_measuring_options(run)


def _add_register(sub: Any) -> None:
    reg = sub.add_parser(
        "register",
        help="obtain a probe id and token from the collector (run does it by itself)",
        description="Register with the collector; the id and token go to the state dir (0600).",
    )
    reg.add_argument("--force", action="store_true", help="register again, replacing the token")
    reg.add_argument("--asn", type=_positive_int, metavar="N", help="declare the probe's ASN")
    reg.add_argument("--network", metavar="NAME", help="declare the probe's network name")
    _add_identity_options(reg)
    _add_state_options(reg)


def _add_status(sub: Any) -> None:
    st = sub.add_parser(
        "status",
        help="what the probe did last, what is queued, whether the collector answers",
        description="Show the last cycle, the spool, the last upload, the probe's network and "
        "whether the collector answers (GET /healthz). Reads the state dir only.",
    )
    st.add_argument("--json", action="store_true", help="print one JSON document")
    st.add_argument("--collector", metavar="URL", help="the collector's base URL (collector.url)")
    _add_state_options(st)


def _add_identity_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collector", metavar="URL", help="the collector's base URL (collector.url)")
    p.add_argument(
        "--enrollment-key",
        metavar="KEY",
        default=os.environ.get("SURBLOCAGE_ENROLLMENT_KEY"),
        help="the collector's enrollment key, if it has one (or $SURBLOCAGE_ENROLLMENT_KEY)",
    )


def _add_state_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="YAML configuration (configs/probe.example.yaml)"
    )
    p.add_argument("--state-dir", metavar="DIR", help="where the probe keeps identity and spool")


def add_measuring_options(p: argparse.ArgumentParser) -> None:
    """Add the options every measuring command accepts (docs/spec.md), each also a config key."""
    g = p.add_argument_group("measuring options (each also settable in --config)")
    g.add_argument(
        "--config", metavar="FILE", help="YAML configuration (configs/probe.example.yaml)"
    )
    g.add_argument(
        "--resolver",
        action="append",
        default=None,
        metavar="PATH",
        help="a resolver path to test, repeatable, the first one primary: [NAME=]IP[:PORT] "
        "(UDP), [NAME=]tls://IP[:PORT][#HOSTNAME] (DoT), [NAME=]https://HOST/PATH (DoH) or "
        "system (default: the system's, then Google, Cloudflare and Quad9 over UDP and DoH)",
    )
    g.add_argument("--control", metavar="URL", help="the collector's control endpoint")
    add_off_switch(g, "--no-control", "control_enabled", help="measure without a control")
    add_off_switch(
        g,
        "--no-diagnostics",
        "diagnostics_enabled",
        help="send no crafted packet when a target is blocked (diagnostics.enabled: false)",
    )
    g.add_argument("--ca-file", metavar="FILE", help="extra trusted CA bundle")
    g.add_argument(
        "--allow-network",
        action="append",
        default=None,
        metavar="CIDR",
        help="treat addresses in this network as public (labs); repeatable",
    )
    g.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="per-step timeout")
    g.add_argument("--concurrency", type=_positive_int, metavar="N", help="targets at once")
    g.add_argument("--asn", type=_positive_int, metavar="N", help="declare the probe's ASN")
    g.add_argument("--network", metavar="NAME", help="declare the probe's network name")
    g.add_argument("--state-dir", metavar="DIR", help="where the probe keeps identity and spool")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


# argparse destination -> the configuration key (or keys) it overrides
OPTIONS: dict[str, str | tuple[str, ...]] = {
    "resolver": "dns.resolvers",
    "control": "control.url",
    "control_enabled": "control.enabled",
    "diagnostics_enabled": "diagnostics.enabled",
    "ca_file": "tls.ca_file",
    "allow_network": "network.allow_networks",
    "concurrency": "concurrency",
    "asn": "network.asn",
    "network": "network.name",
    "state_dir": "state_dir",
    "timeout": ("timeouts.dns", "timeouts.tcp", "timeouts.tls", "timeouts.http"),
}
# `check --watchlist FILE` adds a file's services to the targets: no configuration key
CHECK_OPTIONS = {**OPTIONS, "collector": "collector.url"}
DAEMON_OPTIONS = {
    **OPTIONS,
    "collector": "collector.url",
    "watchlist": "watchlist",
    "census_enabled": "census.enabled",
}


def load_config(
    args: argparse.Namespace, options: Mapping[str, str | tuple[str, ...]] = DAEMON_OPTIONS
) -> config.ProbeConfig:
    """Load --config FILE with the environment and the command line's ``options`` over it."""
    return config.load_config(args.config, overrides_from(args, options))


def flow_options(cfg: Any) -> FlowOptions:
    """Build the flow's options from the configuration."""
    paths = cfg.dns.paths()
    nets = tuple(cfg.network.allow_networks)
    t = cfg.timeouts
    return FlowOptions(
        resolver=paths[0].address,
        resolver_port=paths[0].port,
        paths=paths,
        dns_timeout_seconds=t.dns,
        tcp_timeout_seconds=t.tcp,
        tls_timeout_seconds=t.tls,
        http_timeout_seconds=t.http,
        target_timeout_seconds=t.target,
        ca_file=cfg.tls.ca_file,
        allow_networks=nets,
    )


def probe_info(cfg: Any, opts: FlowOptions) -> ProbeInfo:
    """The probe block of a record: the declared network, the primary resolver path."""
    resolver = (
        opts.resolver if opts.resolver_port == 53 else f"{opts.resolver}:{opts.resolver_port}"
    )
    primary = opts.paths[0] if opts.paths else None
    return ProbeInfo(
        id=None,
        software=f"surblocage/{__version__}",
        asn=cfg.network.asn,
        network=cfg.network.name,
        cc=cfg.network.cc,
        resolver=primary.text if primary else resolver,
        path=primary.name if primary else None,
    )


def diagnoser(cfg: Any, opts: FlowOptions, keep_interval: bool) -> Diagnoser:
    """The diagnostics of blocked targets, as configured; ``keep_interval``: the daemon's."""
    udp = not opts.paths or opts.paths[0].transport == "udp"
    resolver = opts.resolver if udp else None
    return Diagnoser(
        DiagnosticSettings.of(cfg, resolver, opts.resolver_port, opts.neutral_sni, keep_interval)
    )


def load_fingerprints(paths: Sequence[str]) -> fingerprints.FingerprintSet:
    """The packaged signatures, then the config's and the command line's files (later win)."""
    fps = fingerprints.default_fingerprints()
    return fps.merge(fingerprints.load_fingerprints(*paths)) if paths else fps


def check_targets(args: argparse.Namespace, cfg: Any) -> tuple[list[Target], frozenset[str]]:
    """Return the targets of `check` in input order, and the services to measure by DNS only."""
    allow = cfg.network.allow_networks
    targets = [watchlist.target_from_input(t, allow) for t in args.targets]
    dns_only: set[str] = set()
    if args.watchlist:
        wl = watchlist.load_watchlist(args.watchlist, allow)
        targets += wl.targets()
        dns_only = {s.id for s in wl.services if s.dns_only}
    if not targets:
        raise UsageError("check: give at least one URL_OR_DOMAIN, or --watchlist FILE")
    return targets, frozenset(dns_only)


NO_CONTROL_HINT = (
    f"{PROG}: measured without a control, so a failure here cannot be told from an outage and "
    "the verdicts stay inconclusive (no_control); give --control URL (a collector's "
    "/api/v1/control) or set collector.url in the config (--config FILE)"
)


async def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args, CHECK_OPTIONS)
    if args.sweep:
        return await cmd_sweep(args, cfg)
    targets, dns_only = check_targets(args, cfg)
    opts = flow_options(cfg)
    fps = load_fingerprints([*cfg.fingerprints, *args.fingerprints])
    fps = learned.load(cfg.state_dir, cfg.network.asn).merge(fps)  # the files' win on a name
    control_url = cfg.control.url if cfg.control.enabled else None
    progress = Progress(len(targets), quiet=args.quiet)
    client = CollectorClient(control_url) if control_url else None
    ident = _identity_if_any(cfg.state_dir)
    if client is not None and ident is not None:
        client.use_token(ident.token, ident.collector)
    runner = Runner(Flow(opts), probe_info(cfg, opts), client, fps, cfg.concurrency)
    runner.diagnoser = diagnoser(cfg, opts, keep_interval=False)
    async with client if client is not None else contextlib.nullcontext():
        records, blocked = await _measure(runner, targets, dns_only, progress, args.json)
    progress.close()
    if client is None and not args.quiet:
        print(NO_CONTROL_HINT, file=sys.stderr)
    off = runner.diagnoser.off
    if off not in (None, "disabled") and not args.quiet and blocked:
        print(f"{PROG}: diagnostics off: {DIAGNOSTICS_OFF[off]}", file=sys.stderr)
    if client is not None and client.control_refused is not None:
        print(f"{PROG}: {client.control_refused}; measured without a control", file=sys.stderr)
    if not args.json:
        print(render_table(records, use_colour(sys.stdout)))
    return 0


async def _measure(
    runner: Runner, targets: list[Target], dns_only: frozenset[str], progress: Progress,
    json_lines: bool,
) -> tuple[list[Measurement], bool]:  # fmt: skip
    """Judge the targets, and say whether any is blocked; with ``json_lines``, print each record
    (in input order) as soon as it can be and keep none (a cycle of thousands never holds every
    record), else return them all for the table."""
    if not json_lines:
        records = await runner.run(targets, dns_only, progress.update)
        return records, _any_blocked(records)
    blocked = False

    def emit(m: Measurement) -> None:
        sys.stdout.write(m.to_json() + "\n")  # one write a record, even unbuffered

    printer = InOrder(emit)

    def done(i: int, m: Measurement) -> None:
        nonlocal blocked
        blocked = blocked or _any_blocked([m])
        progress.update(m)
        printer(i, m)

    await runner.each(targets, dns_only, done)
    return [], blocked


def _any_blocked(records: Sequence[Any]) -> bool:
    return any(m.verdict is not None and m.verdict.status == "blocked" for m in records)


async def cmd_sweep(args: argparse.Namespace, cfg: config.ProbeConfig) -> int:
    """`check --sweep`: one sweep of the collector's addresses, printed, not uploaded."""
    from probe import sweep
    from probe.address_list import MalformedList
    from probe.census import Census
    from probe.client import CollectorRefused

    if args.targets or args.watchlist:
        raise UsageError("check: --sweep takes no URL_OR_DOMAIN nor --watchlist")
    if cfg.collector.url is None:
        raise UsageError("check: --sweep needs a collector: give --collector URL or collector.url")
    census = Census.of(cfg)
    async with CollectorClient(base_url=cfg.collector.url, timeout_seconds=30.0) as client:
        try:
            targets = await census.fetch(client)
        except (CollectorUnavailable, CollectorRefused, MalformedList) as e:
            print(f"{PROG}: error: {cfg.collector.url}: address list: {e}", file=sys.stderr)
            return 1
    if targets is None:
        print(f"{PROG}: {cfg.collector.url} publishes no addresses to sweep", file=sys.stderr)
        return 1
    progress = Progress(len(targets.addresses), quiet=args.quiet)
    progress.start_sweep(len(targets.addresses))
    result = await census.run(targets, on_entry=progress.swept)
    progress.close()
    if args.json:
        ident = _identity_if_any(cfg.state_dir)
        net = cfg.network
        info = ProbeInfo(
            id=ident.probe_id if ident else None,
            software=f"surblocage/{__version__}",
            asn=net.asn,
            network=net.name,
            cc=net.cc,
        )
        for doc in sweep.documents(result, info):
            print(json.dumps(doc, separators=(",", ":")))
    else:
        print(render_sweep(result.entries, use_colour(sys.stdout)))
    return 0


def _identity_if_any(state_dir: Any) -> identity.Identity | None:
    """The probe's identity, for its token; `check` needs none, so an unreadable state dir is
    no identity."""
    try:
        return identity.load_identity(state_dir)
    except identity.StateError:
        return None


async def cmd_run(args: argparse.Namespace) -> int:
    from probe.daemon import lifecycle

    cfg = load_config(args)
    if args.once and cfg.log.level == "info" and sys.stderr.isatty() and not args.quiet:
        logs.setup(cfg.log.format, "warning")  # the progress line says it on a terminal
    else:
        logs.setup(cfg.log.format, cfg.log.level)
    if cfg.watchlist != "collector":  # a broken file stops us now, not in the first cycle
        watchlist.load_watchlist(cfg.watchlist, cfg.network.allow_networks)
    opts = flow_options(cfg)
    plan = lifecycle.Plan(
        config=cfg,
        probe=probe_info(cfg, opts),
        flow=Flow(opts),
        fingerprints=load_fingerprints(cfg.fingerprints),
        enrollment_key=args.enrollment_key,
        retry_max_seconds=args.retry_max,
        diagnoser=diagnoser(cfg, opts, keep_interval=True),
        cycle_deadline_seconds=args.cycle_deadline,
    )
    if not args.once:
        return await lifecycle.run_forever(plan)
    code, message = await lifecycle.run_once(plan, Progress(0, quiet=args.quiet))
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


async def cmd_register(args: argparse.Namespace) -> int:
    from probe.daemon import lifecycle
    from probe.daemon.delivery import OperatorMustAct, register

    cfg = load_config(args)
    url = cfg.collector.url
    if url is None:
        raise UsageError("register: no collector: give --collector URL or collector.url")
    current = identity.load_identity(cfg.state_dir)
    if current is not None and current.serves(url) and not args.force:
        print(f"already registered with {url} as {current.probe_id} (--force to register again)")
        return 0
    lock = identity.lock_state_dir(cfg.state_dir)  # not under a running daemon's feet
    try:
        async with CollectorClient(base_url=url, timeout_seconds=30.0) as client:
            ident = await register(client, lifecycle.enrollment(cfg, args.enrollment_key))
    except (CollectorUnavailable, OperatorMustAct) as e:
        print(f"{PROG}: error: {url}: {e}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)
    path = cfg.state_dir / identity.IDENTITY_FILE
    print(f"registered with {url} as {ident.probe_id}; identity kept in {path}")
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    from probe.daemon import status

    cfg = load_config(args)
    found = await status.gather(cfg)
    print(json.dumps(found, indent=1) if args.json else status.render(found))
    return 0


COMMANDS = {"check": cmd_check, "run": cmd_run, "register": cmd_register, "status": cmd_status}


def loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return the event loop factory the ``loop`` key asks for; None: asyncio's own.

    uvloop (the extra surblocage[fast]) spends less CPU per target than asyncio's loop
    (docs/bench/i19-light.md); "auto" uses it when it is installed, "uvloop" requires it.
    """
    options = CHECK_OPTIONS if args.command == "check" else DAEMON_OPTIONS
    cfg = load_config(args, options)  # loaded again by the command: cheap, and errors alike
    if cfg.loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if cfg.loop == "uvloop":
            why = "uvloop is not installed (pip install 'surblocage[fast]'), use auto or asyncio"
            raise config.ConfigError(cfg.source or "configuration", "loop", why) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 runtime failure, 2 bad usage)."""
    parser = build_parser()
    tls.limit_read_buffer()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        with asyncio.Runner(loop_factory=loop_factory(args)) as runner:
            return runner.run(COMMANDS[args.command](args))
    except (
        UsageError,
        config.ConfigError,
        watchlist.WatchlistError,
        fingerprints.FingerprintError,
    ) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (OSError, identity.StateError, sqlite3.Error) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
