"""The figures of a spool that `status` and the heartbeat show, read from its database."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from probe.times import rfc3339

COUNTERS = ("dropped_full", "dropped_old", "quarantined", "delivered", "not_stored")
SWEEP_COUNTERS = ("sweeps_delivered", "sweeps_dropped", "sweeps_refused")


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    oldest_spooled_at: str | None
    dropped_full: int
    dropped_old: int
    quarantined: int
    delivered: int
    quarantine_held: int
    not_stored: int  # records measured that a full disk kept out of the spool
    last_upload_at: str | None
    salvage: dict[str, object] | None = None  # the last damaged spool moved aside, if any
    sweeps: int = 0  # sweep documents waiting
    sweeps_delivered: int = 0
    sweeps_dropped: int = 0  # past the caps (SWEEPS_MAX, max_age_days)
    sweeps_refused: int = 0  # refused for good by the collector


def read_stats(db: sqlite3.Connection) -> SpoolStats:
    """Return the figures `status` shows, from an open spool database."""
    depth, oldest = db.execute("SELECT COUNT(*), MIN(spooled_at) FROM records").fetchone()
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    (held,) = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    facts = dict(db.execute("SELECT name, value FROM facts").fetchall())
    try:
        (sweeps,) = db.execute("SELECT COUNT(*) FROM sweeps").fetchone()
    except sqlite3.OperationalError:  # a spool of a version before the census, read-only
        sweeps = 0
    return SpoolStats(
        depth=int(depth),
        oldest_spooled_at=None if oldest is None else rfc3339(oldest, "seconds"),
        last_upload_at=facts.get("last_upload_at"),
        quarantine_held=int(held),
        salvage=json.loads(facts["salvage"]) if "salvage" in facts else None,
        sweeps=int(sweeps),
        **{name: int(counters.get(name, 0)) for name in COUNTERS + SWEEP_COUNTERS},
    )


def stats_readonly(path: Path) -> SpoolStats | None:
    """Read a spool's figures without writing to it (None when there is no spool)."""
    if not path.exists():
        return None
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return read_stats(db)
    finally:
        db.close()
