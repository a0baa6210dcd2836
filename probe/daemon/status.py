"""What `surblocage-probe status` shows: the daemon's heartbeat, its spool, identity and collector.

It only reads the state dir. The spool is opened read-only, and only by the user who owns it:
SQLite may create its -shm file on open, and one created by root would lock the daemon's own
user out. Anyone else (root looking at a systemd DynamicUser's state) sees the spool figures of
the last heartbeat instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Any

from probe.client import CollectorClient, CollectorRefused, CollectorUnavailable
from probe.config import ProbeConfig
from probe.daemon import identity, spool
from probe.daemon.schedule import HEARTBEAT_FILE
from probe.diagnostics import platform
from probe.times import parse_rfc3339

HEALTH_TIMEOUT_SECONDS = 5.0


async def gather(cfg: ProbeConfig) -> dict[str, Any]:
    """Collect what `status` shows, as plain JSON-able values."""
    state_dir = cfg.state_dir
    beat = identity.read_json(state_dir / HEARTBEAT_FILE) or {}
    ident = identity.load_identity(state_dir)
    daemons = beat.get("config") if isinstance(beat.get("config"), dict) else None
    shown = dict(daemons or effective_config(cfg), of="daemon" if daemons else "command")
    return {
        "state_dir": str(state_dir),
        "daemon": _daemon(state_dir, beat),
        "probe_id": ident.probe_id if ident else None,
        "registered_with": ident.collector if ident else None,
        "config": shown,
        "network": await _network(cfg, (daemons or {}).get("network")),
        "resolver": beat.get("resolver") or _primary(cfg) or "the system's (/etc/resolv.conf)",
        "last_cycle": beat.get("last_cycle"),
        "last_sweep": beat.get("last_sweep"),
        "spool": _spool(state_dir, beat),
        "collector": await _collector(cfg.collector.url),
        "diagnostics": _diagnostics(cfg, beat),
    }


def _diagnostics(cfg: ProbeConfig, beat: dict[str, Any]) -> dict[str, Any]:
    """Whether blocked targets are diagnosed: the daemon's word, else this process's own."""
    if isinstance(beat.get("diagnostics"), dict):
        return dict(beat["diagnostics"], of="daemon")
    off = "disabled" if not cfg.diagnostics.enabled else platform.unavailable()
    return {"on": off is None, "off": off, "why": platform.WHY.get(off or ""), "of": "command"}


def effective_config(cfg: ProbeConfig) -> dict[str, Any]:
    """What a run uses, after the file, the environment and the command line: the daemon keeps
    it in its heartbeat, so that `status` shows the daemon's settings, not its own."""
    return {
        "file": cfg.source,
        "collector": cfg.collector.url,
        "control": cfg.control.url if cfg.control.enabled else None,
        "watchlist": cfg.watchlist,
        "resolver": cfg.dns.resolver,
        "resolvers": list(cfg.dns.resolvers) if cfg.dns.resolvers else None,
        "network": {"asn": cfg.network.asn, "name": cfg.network.name, "cc": cfg.network.cc},
        "allow_networks": [str(n) for n in cfg.network.allow_networks],
        "concurrency": cfg.concurrency,
        "interval_seconds": cfg.schedule.interval_seconds,
        "jitter_seconds": cfg.schedule.jitter_seconds,
        "busy_windows": len(cfg.schedule.busy_windows),
        "budget_bytes": cfg.budget.max_bytes_per_cycle,
        "census": dataclasses.asdict(cfg.census),
    }


def running(state_dir: Path) -> bool:
    """Tell whether a `run` holds the state dir (its lock is taken)."""
    try:
        fd = os.open(state_dir / identity.LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _daemon(state_dir: Path, beat: dict[str, Any]) -> dict[str, Any]:
    return {
        "running": running(state_dir),
        "pid": beat.get("pid"),
        "state": beat.get("state"),
        "beat_at": beat.get("beat_at"),
        "next_cycle_at": beat.get("next_cycle_at"),
    }


async def _network(cfg: ProbeConfig, daemons: Any = None) -> dict[str, Any]:
    """The network the daemon declared (its command line included), else the one declared in
    the config, else the one the collector's ASN database sees."""
    if isinstance(daemons, dict) and (daemons.get("asn") is not None or daemons.get("name")):
        return {
            "asn": daemons.get("asn"),
            "name": daemons.get("name"),
            "cc": daemons.get("cc"),
            "source": "daemon",
        }
    net = cfg.network
    if net.asn is not None or net.name is not None:
        return {"asn": net.asn, "name": net.name, "cc": net.cc, "source": "config"}
    found: dict[str, Any] = {"asn": None, "name": None, "cc": net.cc, "source": "collector"}
    if cfg.collector.url is not None:
        async with CollectorClient(
            base_url=cfg.collector.url, timeout_seconds=HEALTH_TIMEOUT_SECONDS
        ) as client:
            try:
                found["asn"], found["name"] = await client.whoami()
            except (CollectorUnavailable, CollectorRefused):
                pass  # no ASN database there, or no answer: the collector decides at ingest
    return found


def _spool(state_dir: Path, beat: dict[str, Any]) -> dict[str, Any] | None:
    path = state_dir / spool.SPOOL_FILE
    try:
        mine = path.stat().st_uid == os.geteuid()
    except OSError:
        mine = False
    if mine:
        try:
            stats = spool.stats_readonly(path)
        except sqlite3.OperationalError:
            stats = None  # held by `run` alone (a full disk): its last heartbeat says more
        except sqlite3.DatabaseError as e:  # `run` moves it aside and salvages it when it starts
            return {"unreadable": str(e)}
        if stats is not None:
            fresh = dict(dataclasses.asdict(stats), as_of="now")
            held_back = (beat.get("spool") or {}).get("not_stored", 0)  # counted in memory
            return dict(fresh, not_stored=max(fresh["not_stored"], held_back))
    snapshot = beat.get("spool")
    return dict(snapshot, as_of=beat.get("beat_at")) if snapshot else None


def _primary(cfg: ProbeConfig) -> str | None:
    """The primary resolver path as configured (a list's first, else the one resolver)."""
    return cfg.dns.resolvers[0] if cfg.dns.resolvers else cfg.dns.resolver


async def _collector(url: str | None) -> dict[str, Any]:
    if url is None:
        return {"url": None, "reachable": None, "why": "no collector configured"}
    async with CollectorClient(base_url=url, timeout_seconds=HEALTH_TIMEOUT_SECONDS) as client:
        try:
            await client.health()
        except (CollectorUnavailable, CollectorRefused) as e:
            return {"url": url, "reachable": False, "why": str(e)}
    return {"url": url, "reachable": True, "why": None}


def render(s: dict[str, Any], now: datetime.datetime | None = None) -> str:
    """Return the human text of a `gather` result."""
    rows = [
        ("daemon", _daemon_text(s["daemon"], now)),
        ("probe id", _identity_text(s)),
        ("network", _network_text(s["network"])),
        ("resolver tested", s["resolver"]),
        ("last cycle", _cycle_text(s["last_cycle"])),
        ("last sweep", _sweep_text(s.get("last_sweep"))),
        ("spool", _spool_text(s["spool"])),
        ("last upload", (s["spool"] or {}).get("last_upload_at") or "never"),
        ("collector", _collector_text(s["collector"])),
    ]
    if s.get("diagnostics"):
        rows.append(("diagnostics", _diagnostics_text(s["diagnostics"])))
    if s.get("config"):
        rows.append(("config", _config_text(s["config"])))
    width = max(len(k) for k, _ in rows) + 1
    head = f"surblocage-probe status (state dir {s['state_dir']})"
    return "\n".join([head] + [f"{k + ':':<{width}} {v}" for k, v in rows])


def _daemon_text(d: dict[str, Any], now: datetime.datetime | None) -> str:
    if not d["running"]:
        last = f"; last beat {d['beat_at']}" if d["beat_at"] else ""
        return f"not running{last}"
    text = f"running (pid {d['pid']}), {d['state']}; last beat {d['beat_at']}"
    if d["beat_at"]:
        now = now or datetime.datetime.now(datetime.UTC)
        then = parse_rfc3339(d["beat_at"])
        text += f" ({int((now - then).total_seconds())} s ago)"
    if d["state"] == "idle" and d["next_cycle_at"]:
        text += f"; next cycle {d['next_cycle_at']}"
    return text


def _diagnostics_text(d: dict[str, Any]) -> str:
    if d.get("on"):
        return "on (blocked targets get crafted packets: DNS injection, reset origin, hop)"
    return f"off: {d.get('off')} ({d.get('why')})"


def _identity_text(s: dict[str, Any]) -> str:
    if s["probe_id"] is None:
        return "not registered yet"
    return f"{s['probe_id']} (registered with {s['registered_with']})"


def _network_text(n: dict[str, Any]) -> str:
    if n["source"] in ("config", "daemon"):
        name = " ".join(x for x in (f"AS{n['asn']}" if n["asn"] else "", n["name"] or "") if x)
        where = "the config" if n["source"] == "config" else "the daemon's configuration"
        return f"{name} ({n['cc']}), declared in {where}"
    if n["asn"] is not None:
        name = " ".join(x for x in (f"AS{n['asn']}", n["name"] or "") if x)
        return f"{name}, as the collector's ASN database sees this line"
    return "decided by the collector from the address it sees (its ASN database)"


def _cycle_text(c: dict[str, Any] | None) -> str:
    if c is None:
        return "none yet"
    text = (
        f"{c['started_at']} {c['outcome']}: {c['targets']} targets, {c['measured']} measured, "
        f"{c['blocked']} blocked"
    )
    return text + (f", {c['skipped_budget']} skipped (budget)" if c["skipped_budget"] else "")


def _sweep_text(w: dict[str, Any] | None) -> str:
    if w is None:
        return "none yet"
    text = f"{w['at']}: {w['addresses']} addresses, {w['failures']} failed"
    skipped = w["skipped_budget"] + w["skipped_deadline"]
    text += f", {skipped} skipped (budget or deadline)" if skipped else ""
    return text + (" (not stored: disk full)" if w["outcome"] == "not_stored" else "")


def _spool_text(sp: dict[str, Any] | None) -> str:
    if sp is None:
        return "empty (no spool yet)"
    if "unreadable" in sp:
        return f"damaged ({sp['unreadable']}): `run` will move it aside and salvage its records"
    dropped = sp["dropped_full"] + sp["dropped_old"]
    text = (
        f"{sp['depth']} records waiting, {dropped} dropped (spool full {sp['dropped_full']}, "
        f"too old {sp['dropped_old']}), {sp['quarantined']} quarantined "
        f"({sp.get('quarantine_held', 0)} kept), {sp['delivered']} delivered"
    )
    if sp.get("not_stored"):
        text += f", {sp['not_stored']} measured but not stored (disk full)"
    if sp.get("sweeps") or sp.get("sweeps_delivered"):
        text += f"; {sp['sweeps']} sweep documents waiting, {sp['sweeps_delivered']} delivered"
    text += "" if sp["as_of"] == "now" else f" (as of {sp['as_of']})"
    note = sp.get("salvage")
    if note:
        text += (
            f"; damaged spool moved aside at {note['at']} ({note['why']}): {note['moved_to']}, "
            f"{note['salvaged']} records salvaged"
        )
    return text


def _collector_text(c: dict[str, Any]) -> str:
    if c["url"] is None:
        return "none configured"
    return f"{c['url']} " + ("reachable" if c["reachable"] else f"unreachable ({c['why']})")


def _config_text(c: dict[str, Any]) -> str:
    whose = "the daemon's" if c.get("of") == "daemon" else "this command's (no daemon has run)"
    census = c.get("census") or {}
    sweep = (
        f"census sweep on ({census.get('rate')}/s, up to {census.get('max_addresses')} addresses)"
        if census.get("enabled")
        else "census sweep off"
    )
    parts = [
        f"{whose}: file {c.get('file') or 'none'}",
        f"control {c.get('control') or 'off'}",
        f"every {c.get('interval_seconds'):g} s (+ up to {c.get('jitter_seconds'):g} s)",
        f"{c.get('concurrency')} targets at once",
        f"budget {_size(c.get('budget_bytes'))} a cycle",
        sweep,
    ]
    return "; ".join(parts)


def _size(n: Any) -> str:
    if isinstance(n, int) and n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return f"{n} bytes"
