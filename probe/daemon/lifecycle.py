"""The `run` command's life: wiring the daemon from the config, signals, forever or one cycle.

`run` takes the state dir's lock (one `run` per spool), opens the spool and the collector client,
and closes them on every way out. SIGTERM and SIGINT stop it cleanly: the cycle in flight is
cancelled (its finished records are already spooled), background uploads are cancelled (their
records stay spooled and are sent again: the collector is idempotent by record id), a last
heartbeat says "stopped", and a log line says which signal stopped it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import __version__, logs
from probe.census import Census
from probe.client import CollectorClient, CollectorUnavailable
from probe.config import ProbeConfig
from probe.daemon import identity, status
from probe.daemon.cycle import CycleReport, WatchlistSource
from probe.daemon.delivery import Backoff, Delivery, Enrollment, OperatorMustAct
from probe.daemon.schedule import (
    HEARTBEAT_FILE,
    STALL_SECONDS,
    Daemon,
    Heartbeat,
    Watchdog,
    until_stopped,
)
from probe.daemon.spool import Spool
from probe.daemon.sweeping import SweepStage
from probe.diagnostics import Diagnoser
from probe.diagnostics.platform import WHY as DIAGNOSTICS_OFF
from probe.flow import Flow
from probe.output import Progress
from probe.record import ProbeInfo
from probe.runner import Runner

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Plan:
    """What `run` was asked to do, once the command line and the config are read."""

    config: ProbeConfig
    probe: ProbeInfo
    flow: Flow
    fingerprints: Any
    enrollment_key: str | None = None
    retry_max_seconds: float = 900.0
    cycle_deadline_seconds: float | None = None
    diagnoser: Diagnoser | None = None


def enrollment(cfg: ProbeConfig, key: str | None) -> Enrollment:
    """What registering with the configured collector declares."""
    assert cfg.collector.url is not None
    net = cfg.network
    return Enrollment(cfg.state_dir, cfg.collector.url, net.asn, net.name, key)


async def run_forever(plan: Plan) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status (0 on a clean stop)."""

    async def forever(daemon: Daemon) -> tuple[int, str]:
        stop, received = _stop_on_signals()
        watchdog = Watchdog(STALL_SECONDS)
        watchdog.start()
        collector = plan.config.collector.url
        logs.event(
            "probe started", version=__version__, collector=collector, resolver=plan.probe.resolver
        )
        try:
            await daemon.run(stop, watchdog)
        finally:
            watchdog.stop()
        signal_name = received[0] if received else None
        logs.event("stopped", signal=signal_name, spooled=daemon.spool.depth())
        return 0, ""

    code, _ = await _with_daemon(plan, forever)
    return code


async def run_once(plan: Plan, progress: Progress) -> tuple[int, str]:
    """Run one cycle and submit its records; return the exit status and a line for people."""
    return await _with_daemon(plan, lambda d: _once(d, progress))


async def _with_daemon(
    plan: Plan, body: Callable[[Daemon], Awaitable[tuple[int, str]]]
) -> tuple[int, str]:
    cfg = plan.config
    lock = identity.lock_state_dir(cfg.state_dir)
    spool = Spool.in_state_dir(cfg.state_dir, cfg.spool.max_records, cfg.spool.max_age_days)
    _tell_what_the_spool_found(spool)
    try:
        client = CollectorClient(
            _control_url(cfg), software=plan.probe.software, base_url=cfg.collector.url
        )
        async with client:
            return await body(_daemon(plan, spool, client))
    finally:
        spool.close()
        os.close(lock)


def _tell_what_the_spool_found(spool: Spool) -> None:
    """Log what opening the spool found: a damaged file, a full disk, a quarantine let out."""
    if spool.released:
        logs.event("quarantined records sent again by this version", count=spool.released)
    if spool.disk_full:
        logs.event(
            "disk full: records spooled still leave; new ones are counted, not stored",
            logging.ERROR,
            spooled=spool.depth(),
            state_dir=str(spool.path.parent),
        )
    if spool.rescue is not None:
        r = spool.rescue
        logs.event(
            "spool damaged: moved aside, its readable records salvaged",
            logging.ERROR,
            why=r.why,
            moved_to=r.moved_to,
            salvaged=len(r.records),
        )


def _daemon(plan: Plan, spool: Spool, client: CollectorClient) -> Daemon:
    """Wire the daemon; without a collector it measures and keeps everything in the spool."""
    cfg = plan.config
    collector = cfg.collector.url
    delivery = None
    if collector is not None:
        ident = identity.load_identity(cfg.state_dir)
        if ident is not None and not ident.serves(collector):
            logs.event("identity is for another collector: registering", was=ident.collector)
            ident = None
        delivery = Delivery(
            spool,
            client,
            enrollment(cfg, plan.enrollment_key),
            ident,
            cfg.upload.batch_size,
            Backoff(cap_seconds=plan.retry_max_seconds),
            cfg.upload.quarantine_after,
        )
    control = client if _control_url(cfg) else None
    source = client if collector else None
    sweeps = None
    if collector is not None and cfg.census.enabled:
        sweeps = SweepStage(Census.of(cfg), client, spool)
    about = {
        "collector": collector,
        "resolver": plan.probe.resolver,
        "software": plan.probe.software,
        "config": status.effective_config(cfg),
        "diagnostics": _diagnostics_state(plan.diagnoser),
    }
    return Daemon(
        runner=Runner(
            plan.flow,
            plan.probe,
            control,
            plan.fingerprints,
            cfg.concurrency,
            cfg.dns.whoami,
            plan.diagnoser,
        ),
        spool=spool,
        watchlists=WatchlistSource(
            cfg.watchlist,
            cfg.state_dir,
            source,
            cfg.network.allow_networks,
            cfg.network.asn,
        ),
        heartbeat=Heartbeat(
            cfg.state_dir / HEARTBEAT_FILE,
            spool,
            about,
            Path(cfg.metrics.textfile) if cfg.metrics.textfile else None,
        ),
        schedule=cfg.schedule,
        budget_bytes=cfg.budget.max_bytes_per_cycle,
        target_timeout_seconds=cfg.timeouts.target,
        delivery=delivery,
        deadline_seconds=plan.cycle_deadline_seconds,
        sweeps=sweeps,
    )


def _diagnostics_state(d: Diagnoser | None) -> dict[str, Any]:
    """Whether the daemon diagnoses blocked targets, and why not; said once in the log."""
    off = "disabled" if d is None else d.off
    if off is not None:
        logs.event("diagnostics off", why=off, detail=DIAGNOSTICS_OFF[off])
    return {"on": off is None, "off": off, "why": DIAGNOSTICS_OFF.get(off or "")}


def _control_url(cfg: ProbeConfig) -> str | None:
    return cfg.control.url if cfg.control.enabled else None


def _stop_on_signals() -> tuple[asyncio.Event, list[str]]:
    """Return an event that SIGTERM or SIGINT sets, and the names of the signals received."""
    stop, received = asyncio.Event(), []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        logs.event("signal received: stopping", signal=sig.name)
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop, received


async def _once(daemon: Daemon, progress: Progress) -> tuple[int, str]:
    stop, received = _stop_on_signals()
    reports: list[CycleReport] = []

    def set_total(n: int) -> None:
        progress.total = n

    async def cycle_and_submit() -> None:
        if daemon.delivery is not None:
            await daemon.delivery.try_register()
        reports.append(
            await daemon.cycle(progress.update, set_total, progress.start_sweep, progress.swept)
        )
        if daemon.delivery is not None:
            await daemon.delivery.drain()

    try:
        finished = await until_stopped(cycle_and_submit(), stop)
    except (CollectorUnavailable, OperatorMustAct) as e:
        return 1, f"surblocage-probe: error: {e}; {_kept(daemon)} (`run` submits them later)"
    finally:
        progress.close()
        daemon.heartbeat.write("stopped")  # `status` shows this cycle and the spool after it
    if not finished:
        return EXIT_INTERRUPTED, f"surblocage-probe: interrupted by {received[0]}; {_kept(daemon)}"
    r = reports[0]
    where = "submitted" if daemon.delivery else "kept in the spool (no collector)"
    line = (
        f"{r.measured} of {r.targets} targets measured, {r.blocked} blocked, "
        f"{r.skipped_budget} skipped (budget){_swept(daemon)}; records {where}"
    )
    if r.not_stored:
        return 1, f"surblocage-probe: disk full: {r.not_stored} records not stored; {line}"
    return (0, line) if r.outcome == "done" else (1, f"surblocage-probe: cycle {r.outcome}; {line}")


def _swept(daemon: Daemon) -> str:
    s = daemon.heartbeat.last_sweep
    if s is None:
        return ""
    skipped = s.skipped_budget + s.skipped_deadline
    return f"; {s.addresses} addresses swept, {s.failures} failed, {skipped} skipped"


def _kept(daemon: Daemon) -> str:
    return f"{daemon.spool.depth()} records kept in the spool"
