"""The `surblocage-collector` commands (docs/spec.md): serve, migrate, export, probes, domains.

Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or configuration, with one line
on standard error that names the argument, file or key at fault (never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from collector import app as app_mod
from collector import config, export, export_census, export_flags, export_ooni, handlers, peers
from collector.store import MeasurementQuery, StoreUnavailable, filters
from probe import __version__, logs
from probe.settings import Parser, UsageError, add_off_switch, overrides_from

PROG = "surblocage-collector"
SHUTDOWN_SECONDS = 30.0  # how long a stopping collector lets requests in flight finish


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Receive probes' measurements, run the control vantage, "
        "flag blocking per network and serve researchers and operators.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    serve = sub.add_parser("serve", help="run the HTTP service (ingest, control, API, /metrics)")
    _common(serve)
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8080)"
    )
    serve.add_argument("--watchlist", metavar="FILE", help="the watchlist served to probes")
    serve.add_argument(
        "--resolver",
        dest="control_resolver",  # export's --resolver is the flags' resolver path filter
        metavar="IP[:PORT]",
        help="the control vantage's resolver (default: the system's)",
    )
    serve.add_argument("--ca-file", metavar="FILE", help="extra trusted CA bundle for the control")
    serve.add_argument(
        "--allow-network",
        action="append",
        metavar="CIDR",
        help="treat addresses in this network as public (labs); repeatable",
    )
    add_off_switch(serve, "--no-control", "control_enabled", help="run no control vantage")
    serve.add_argument("--log-format", choices=logs.FORMATS, help="text or json lines (log.format)")
    serve.add_argument("--log-level", choices=logs.LEVELS, help="(log.level)")
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    _common(migrate)
    probes = sub.add_parser("probes", help="manage registered probes")
    verbs = probes.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=Parser)
    revoke = verbs.add_parser(
        "revoke", help="refuse a probe's token and drop its records from the flags"
    )
    _common(revoke)
    revoke.add_argument("probe_id", metavar="ID", help="the probe's id (p-...)")
    _export_parser(sub)
    _domains_parser(sub)
    return p


def _domains_parser(sub: Any) -> None:
    domains = sub.add_parser(
        "domains", help="the census's domain index: import lists of names, resolve them"
    )
    verbs = domains.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=Parser)
    imp = verbs.add_parser(
        "import",
        help="add names to the index, or update their ranks",
        description="Import a list of domains: a Tranco-style CSV (rank,domain; a header line "
        "allowed) or one name a line (# comments), gzip or not. New names are added, known ones "
        "get the list's rank; nothing is removed. Lines that are not hostnames are skipped and "
        "counted.",
    )
    _common(imp)
    imp.add_argument(
        "--intended",
        action="store_true",
        help="mark the names as targets of blocking orders (counted apart from the collateral)",
    )
    imp.add_argument("file", metavar="FILE", help="the list to import, or - (standard input)")
    res = verbs.add_parser(
        "resolve",
        help="resolve every indexed name once (A and AAAA), from this machine",
        description="Resolve every name of the index once through one resolver, keeping the "
        "public addresses each answers (with first and last seen). Progress on standard error.",
    )
    _common(res)
    res.add_argument(
        "--resolver",
        dest="census_resolver",
        metavar="IP[:PORT]",
        help="the resolver to ask (default: census.resolver, else control.resolver, else the "
        "system's)",
    )
    res.add_argument(
        "--qps",
        dest="census_qps",
        type=float,
        metavar="N",
        help="names a second at most (default 100)",
    )
    res.add_argument(
        "--allow-network",
        action="append",
        metavar="CIDR",
        help="keep answers in this network though not public (labs); repeatable",
    )


def _export_parser(sub: Any) -> None:
    ex = sub.add_parser(
        "export",
        help="write stored measurements, flags or the census as JSON Lines, CSV or Parquet",
        description="Write every measurement matching the filters, in (started_at, id) order "
        "(--order desc: the reverse), or with --what flags every flag, latest seen first, or with "
        "--what census one row a (network, blocked address, domain). --since and --until take "
        "RFC 3339 times or dates (YYYY-MM-DD: that day at 00:00 UTC; --until excludes it). "
        "Filters are those of GET /api/v1/measurements, of GET /api/v1/flags with --what flags, "
        "of GET /api/v1/census/addresses with --what census.",
    )
    _common(ex)
    ex.add_argument(
        "--what", choices=tuple(NOUNS), default="measurements", help="default measurements"
    )
    ex.add_argument(
        "--format",
        choices=export.FORMATS,
        default="jsonl",
        help="default jsonl; ooni: one OONI web_connectivity measurement a line (measurements)",
    )
    ex.add_argument(
        "--output", "-o", metavar="FILE", default="-", help="file to write, or - (stdout)"
    )
    for name, help_text in FILTER_HELP.items():
        flag = f"--{name.replace('_', '-')}"
        ex.add_argument(flag, dest=name, metavar=name.upper(), help=help_text)


# --what, and what the count says
NOUNS = {"measurements": "records", "flags": "flags", "census": "census rows"}
FILTERS_OF = {
    "measurements": filters.MEASUREMENT_FILTERS,
    "flags": filters.FLAG_FILTERS,
    # in (network, address, first seen) order: the API's order does not apply
    "census": tuple(f for f in filters.CENSUS_ADDRESS_FILTERS if f.name != "order"),
}
LAYOUTS = {"measurements": export_ooni.LAYOUT, "flags": export_flags.LAYOUT,
           "census": export_census.LAYOUT}  # fmt: skip
EXPORT_FILTERS = filters.names(filters.MEASUREMENT_FILTERS)


def _filter_help() -> dict[str, str]:
    """The help of each filter option, in the API's words ("flags: ..." where they differ)."""
    said: dict[str, dict[str, str]] = {}
    for what, chosen in FILTERS_OF.items():
        for f in chosen:
            text = f"{f.help} ({', '.join(f.choices)})" if f.choices else f.help
            said.setdefault(f.name, {})[what] = text
    return {name: _one_help(by_what) for name, by_what in said.items()}


def _one_help(by_what: dict[str, str]) -> str:
    own = by_what.get("measurements")
    others = [f"{what}: {text}" for what, text in by_what.items() if text != own]
    return "; ".join([own, *others] if own else others)


FILTER_HELP = _filter_help()


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="YAML configuration (configs/collector.example.yaml)"
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help=f"sqlite:///PATH or postgresql://... (default {config.DEFAULT_DB})",
    )


# argparse destination -> the configuration key it overrides
OPTIONS = {
    "db": "database.url",
    "listen": "listen",
    "watchlist": "watchlist",
    "control_resolver": "control.resolver",
    "ca_file": "tls.ca_file",
    "allow_network": "network.allow_networks",
    "control_enabled": "control.enabled",
    "log_format": "log.format",
    "log_level": "log.level",
    "census_resolver": "census.resolver",
    "census_qps": "census.qps",
}


def load_config(args: argparse.Namespace) -> config.CollectorConfig:
    """Load --config FILE with the environment and the command line's options over it."""
    return config.load_config(args.config, overrides_from(args, OPTIONS))


async def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    logs.setup(cfg.log_format, cfg.log_level)
    # aiohttp's own warnings and errors in the same format (its addresses are blanked: app.py)
    aiohttp_logger = logging.getLogger("aiohttp")
    aiohttp_logger.handlers[:] = logs.LOG.handlers
    aiohttp_logger.setLevel(logging.WARNING)
    aiohttp_logger.propagate = False
    db = open_database(cfg.database_url)
    application = app_mod.build_app(cfg, store=db)
    host, _, port = cfg.listen.rpartition(":")
    runner = peers.runner(application, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    guard = application[handlers.STATE].guard
    site = peers.GuardedSite(runner, host.strip("[]"), int(port), guard)
    await site.start()
    app_mod.tune_gc()
    bound = " ".join(_hostport(a) for a in runner.addresses)
    logs.event("collector listening", listen=bound, version=__version__)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logs.event("stopping: finishing requests in flight")
    for running_site in list(runner.sites):
        await running_site.stop()  # accept no new connection
    inflight = application[handlers.STATE].inflight
    if not await inflight.wait_idle(SHUTDOWN_SECONDS):
        logs.event("stopping: requests still in flight are cut", logging.WARNING, n=inflight.count)
    await runner.cleanup()  # closes idle keep-alive connections
    db.close()
    logs.event("stopped")
    return 0


def _hostport(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_database(url: str) -> Any:
    """Open the store; the embedded SQLite default is migrated on the spot, PostgreSQL is not
    (several collectors share it: migrate it once, on purpose, with `migrate`)."""
    from collector import judge, store

    if url.startswith("sqlite"):
        store.migrate(url)
    db = judge.open_store(url)
    try:
        db.check_schema()
    except store.SchemaMismatch as e:
        raise config.ConfigError("database.url", url, f"{e}; run `{PROG} migrate`") from None
    return db


async def cmd_migrate(args: argparse.Namespace) -> int:
    from collector import store

    cfg = load_config(args)
    applied = store.migrate(cfg.database_url)
    print(f"schema up to date ({len(applied)} revision(s) applied)")
    return 0


def open_for_reading(url: str) -> Any:
    """Open an existing, migrated store: no file created, no migration (a flags export judges
    the pairs batches left pending, as every reader of flags does)."""
    from collector import judge, store

    if url.startswith("sqlite:///"):
        path = os.path.expanduser(url.removeprefix("sqlite:///"))
        if not os.path.isfile(path):
            raise config.ConfigError("--db", url, f"no such database file: {path}")
    db = judge.open_store(url)
    try:
        db.check_schema()
    except store.SchemaMismatch as e:
        db.close()
        raise config.ConfigError("--db", url, f"{e}; run `{PROG} migrate`") from None
    return db


def export_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters of --what given on the command line, as the store takes them; UsageError
    naming one that is malformed or not a filter of --what."""
    takes = filters.names(FILTERS_OF[args.what])
    for name in FILTER_HELP:
        if name not in takes and getattr(args, name) is not None:
            options = " ".join(f"--{k.replace('_', '-')}" for k in takes)
            raise UsageError(
                f"argument --{name.replace('_', '-')}: not a filter of --what {args.what} "
                f"(its filters: {options})"
            )
    given = {k: getattr(args, k) for k in takes if getattr(args, k) is not None}
    try:
        return filters.parse(given, FILTERS_OF[args.what])
    except ValueError as e:
        name, _, why = str(e).partition(": ")
        raise UsageError(f"argument --{name.replace('_', '-')}: {why}") from None


def _export_reader(args: argparse.Namespace, cfg: config.CollectorConfig) -> Any:
    """Check the filters against --what; return what reads the items from an open store."""
    chosen = export_filters(args)
    if args.what == "flags":
        return functools.partial(_judged_flags, chosen=chosen, policy=app_mod.flag_policy(cfg))
    if args.what == "census":
        return lambda db: export_census.rows(db, chosen)
    q = MeasurementQuery(**chosen)
    return lambda db: db.iter_measurements(q)


def _judged_flags(db: Any, chosen: dict[str, Any], policy: Any) -> list[dict[str, Any]]:
    """The flags after judging what batches left pending (docs/spec.md: flags reflect every
    acknowledged batch, whichever collector process acknowledged it)."""
    from collector import flag_diagnostics, judge

    findings = judge.Findings(db, policy)
    findings.judge_pending(datetime.datetime.now(datetime.UTC))
    found = list(findings.query_flags(**chosen))
    return db.read(flag_diagnostics.attach, found)


def cmd_export(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.format == "ooni" and args.what != "measurements":
        raise UsageError("argument --format: ooni is for --what measurements only")
    read = _export_reader(args, cfg)
    if args.format == "parquet":
        try:
            export.check_parquet()
        except export.ExportError as e:
            raise UsageError(str(e)) from None
    try:
        with open_for_reading(cfg.database_url) as db:
            written = _write_export(read(db), args.what, args.format, args.output)
    except BrokenPipeError:
        # the reader stopped reading (`export | head`): its choice, not a failure; and the
        # interpreter must not complain when it flushes standard output at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    where = "standard output" if args.output == "-" else args.output
    print(f"{written} {NOUNS[args.what]} written to {where}", file=sys.stderr)
    return 0


def _write_export(items: Any, what: str, fmt: str, output: str) -> int:
    """Write to ``output`` through a temporary file, so that a cut export leaves no file."""
    progress = functools.partial(_progress, NOUNS[what]) if sys.stderr.isatty() else None
    if output == "-":
        n = _write(items, what, fmt, sys.stdout.buffer, progress)
        sys.stdout.buffer.flush()
    else:
        partial = f"{output}.partial"
        try:
            with open(partial, "wb") as out:
                n = _write(items, what, fmt, out, progress)
            os.replace(partial, output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
    if progress:
        print(file=sys.stderr)  # end the progress line
    return n


def _write(items: Any, what: str, fmt: str, out: Any, progress: Any) -> int:
    layout = LAYOUTS[what]
    if fmt == "parquet":
        return export.write_parquet(items, out, progress, layout)
    return export.write_text(items, fmt, out, progress, layout)


def _progress(noun: str, written: int) -> None:
    print(f"\r{written} {noun} written", end="", file=sys.stderr, flush=True)


def cmd_probes(args: argparse.Namespace) -> int:
    """`probes revoke ID`: the probe's token is refused from now on, and the flags it supported
    are judged again without its records (at the next judgement: a read, or a batch)."""
    from collector import judge

    cfg = load_config(args)
    with open_for_reading(cfg.database_url) as db:
        now = datetime.datetime.now(datetime.UTC)
        pairs = judge.Findings(db, app_mod.flag_policy(cfg)).revoke(args.probe_id, now)
    if pairs is None:
        print(f"{PROG}: error: no probe {args.probe_id!r}", file=sys.stderr)
        return 1
    print(f"probe {args.probe_id} revoked; {pairs} flag pair(s) to judge again")
    return 0


def cmd_domains(args: argparse.Namespace) -> int:
    """`domains import FILE` and `domains resolve` (docs/spec.md, "The domain index")."""
    cfg = load_config(args)
    if args.verb == "import":
        return _import_domains(args.file, args.intended, cfg.database_url)
    return asyncio.run(_resolve_domains(cfg))


def _import_domains(path: str, intended: bool, url: str) -> int:
    from collector.census import index, names

    stream = _open_list(path)
    tally, added, updated = names.Tally(), 0, 0
    t = datetime.datetime.now(datetime.UTC)
    progress = sys.stderr.isatty()  # as export's: a terminal's line, rewritten chunk by chunk
    with stream, open_database(url) as db:
        for chunk in names.read(stream, tally):
            new, known = db.write(index.upsert, chunk, t, intended)
            added, updated = added + new, updated + known
            if progress:
                print(f"\r{added + updated} names imported", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)  # end the progress line
    print(f"imported {added + updated} names ({added} new, {updated} updated), "
          f"skipped {tally.skipped} lines")  # fmt: skip
    for skipped in tally.first:
        print(f"  line {skipped.line}: {skipped.why}")
    if tally.skipped > len(tally.first):
        print(f"  ... and {tally.skipped - len(tally.first)} more")
    return 0


def _open_list(path: str) -> Any:
    """Open the list FILE (binary), or standard input for -; UsageError naming a missing one."""
    if path == "-":  # closing it leaves standard input open
        return open(sys.stdin.fileno(), "rb", closefd=False)
    try:
        return open(path, "rb")
    except OSError as e:
        raise UsageError(f"argument FILE: cannot read {path}: {e.strerror}") from None


async def _resolve_domains(cfg: config.CollectorConfig) -> int:
    from collector.census import refresh, resolve

    resolver = refresh.resolver_for(cfg)
    with open_database(cfg.database_url) as db:
        now = datetime.datetime.now(datetime.UTC)
        summary = await resolve.Pass(
            db, resolver, cfg.census_qps, now, progress=_resolve_progress
        ).run()
    print(summary.line())
    return 0


def _resolve_progress(done: int, total: int, seconds: float) -> None:
    from collector.census import resolve

    print(resolve.eta_line(done, total, seconds), file=sys.stderr, flush=True)


ASYNC_COMMANDS = {"serve": cmd_serve, "migrate": cmd_migrate}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 runtime failure, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "export":  # synchronous: reads the store chunk by chunk, no loop
            return cmd_export(args)
        if args.command == "probes":
            return cmd_probes(args)
        if args.command == "domains":
            return cmd_domains(args)
        return asyncio.run(ASYNC_COMMANDS[args.command](args))
    except (UsageError, config.ConfigError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (OSError, StoreUnavailable) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
