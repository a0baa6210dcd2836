"""The durable outbox: a record is committed here before any upload and leaves once acknowledged.

SQLite in the state dir (WAL, synchronous=FULL: a commit survives a power cut). Records leave in
the order they came (oldest first). Past ``max_records`` or ``max_age_days`` the oldest are
dropped and counted; a record the collector refuses for good is moved to the quarantine table and
counted, and goes back into the outbox when another version of the probe opens the spool (the
refusal may have been a bug of the version that measured it). The counters persist with the
records, so `status` shows them after a restart.

The census's sweep documents wait in a table of their own (``sweeps``): they go to another
route, at most ten a request, are capped at SWEEPS_MAX, and one refused alone is dropped and
counted rather than quarantined (the next cycle sweeps the same addresses again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from probe import __version__
from probe.daemon import salvage
from probe.daemon.spool_stats import SpoolStats as SpoolStats
from probe.daemon.spool_stats import read_stats as read_stats
from probe.daemon.spool_stats import stats_readonly as stats_readonly
from probe.record import Measurement
from probe.times import rfc3339

SPOOL_FILE = "spool.db"
QUARANTINE_MAX = 1000  # kept for an operator to look at; older ones go first
# sweep documents waiting (docs/spec.md, "Sweeps"): two an hourly cycle at the default 2,000
# addresses, so about two weeks of a collector away; the oldest go first, as records do
SWEEPS_MAX = 720

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    spooled_at REAL NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    spooled_at REAL NOT NULL,
    quarantined_at REAL NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS strikes (
    id TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    spooled_at REAL NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Spooled:
    """One record waiting in the spool: its id and its JSON text, as measured."""

    id: str
    body: str


class SpoolFull(Exception):
    """The disk is full: the record was not stored (it is counted)."""


def disk_full(e: sqlite3.Error) -> bool:
    """Tell whether SQLite failed for want of space (SQLITE_FULL, or an I/O error writing)."""
    return getattr(e, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


class Spool:
    """The outbox of one probe; one process at a time (the state dir lock sees to it)."""

    def __init__(
        self,
        path: Path,
        max_records: int = 100_000,
        max_age_days: float = 30.0,
        clock: Callable[[], float] = time.time,
        version: str = __version__,
    ) -> None:
        self.path, self.max_records = path, max_records
        self.max_age_seconds = max_age_days * 86400.0
        self.clock, self.version = clock, version
        self.rescue = salvage.check(path, clock())  # a damaged file is moved aside, never reused
        # what a full disk kept from being written: counted, and written with the next commit
        self.unstored, self.gone = 0, set[str]()
        self.disk_full = False
        try:
            self._db = _connect(path, exclusive=False)
        except sqlite3.OperationalError as e:
            if not disk_full(e):
                raise
            # no room for the shared-memory index: keep it in this process's memory instead
            self._db, self.disk_full = _connect(path, exclusive=True), True
        self._db.executescript(SCHEMA)  # each CREATE ... IF NOT EXISTS is atomic by itself
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(quarantine)")}
        if "version" not in columns:  # a spool from before quarantined records kept a version
            self._db.execute("ALTER TABLE quarantine ADD COLUMN version TEXT NOT NULL DEFAULT ''")
        self.released = 0
        with self._full_disk_waits():
            self.released = self._release_quarantine()
        if self.rescue is not None:
            self._take(self.rescue)

    @classmethod
    def in_state_dir(cls, state_dir: Path, max_records: int, max_age_days: float) -> Spool:
        return cls(state_dir / SPOOL_FILE, max_records, max_age_days)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction, carrying what a full disk kept back (it leaves memory on commit)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self.gone:
                self._count(self._db, "delivered", _delete(self._db, "records", list(self.gone)))
            self._count(self._db, "not_stored", self.unstored)
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError) and disk_full(e):
                self.disk_full = True
            raise
        self.unstored, self.gone, self.disk_full = 0, set(), False

    def add(self, m: Measurement) -> tuple[int, int]:
        """Commit ``m`` durably; return how many old records the caps dropped (full, old).

        On a full disk, count it and raise SpoolFull: the measurements go on, and the records
        already spooled still leave.
        """
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO records (id, spooled_at, body) VALUES (?, ?, ?)",
                    (m.id, self.clock(), m.to_json()),
                )
                return self._enforce_caps(db)
        except sqlite3.OperationalError as e:
            if not disk_full(e):
                raise
            self.unstored += 1
            raise SpoolFull(f"disk full: {self.unstored} records not stored") from None

    def add_sweeps(self, docs: Sequence[tuple[str, str]]) -> int:
        """Commit a cycle's sweep documents (id, JSON text) together; return how many old ones
        the caps dropped. On a full disk, raise SpoolFull (nothing of the sweep is kept)."""
        try:
            with self._transaction() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO sweeps (id, spooled_at, body) VALUES (?, ?, ?)",
                    [(i, self.clock(), body) for i, body in docs],
                )
                return self._cap_sweeps(db)
        except sqlite3.OperationalError as e:
            if not disk_full(e):
                raise
            raise SpoolFull(f"disk full: a sweep of {len(docs)} documents not stored") from None

    def _cap_sweeps(self, db: sqlite3.Connection) -> int:
        cutoff = self.clock() - self.max_age_seconds
        dropped = db.execute("DELETE FROM sweeps WHERE spooled_at < ?", (cutoff,)).rowcount
        dropped += db.execute(
            "DELETE FROM sweeps WHERE seq <= (SELECT MAX(seq) FROM sweeps) - ?", (SWEEPS_MAX,)
        ).rowcount
        self._count(db, "sweeps_dropped", dropped)
        return int(dropped)

    def peek_sweeps(self, limit: int) -> list[Spooled]:
        """Return up to ``limit`` sweep documents, oldest first, without removing them."""
        rows = self._db.execute(
            "SELECT id, body FROM sweeps ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [Spooled(i, b) for i, b in rows]

    def acknowledge_sweeps(self, ids: Sequence[str]) -> None:
        """Remove sweep documents the collector acknowledged."""
        with self._full_disk_waits(), self._transaction() as db:
            self._count(db, "sweeps_delivered", _delete(db, "sweeps", ids))
            db.execute(
                "INSERT OR REPLACE INTO facts (name, value) VALUES ('last_upload_at', ?)",
                (rfc3339(self.clock(), "seconds"),),
            )

    def refuse_sweep(self, sweep_id: str) -> None:
        """Drop a sweep document the collector refuses for good, counting it."""
        with self._full_disk_waits(), self._transaction() as db:
            self._count(db, "sweeps_refused", _delete(db, "sweeps", [sweep_id]))

    def sweep_depth(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM sweeps").fetchone()
        return int(n)

    def prune(self) -> tuple[int, int]:
        """Drop what is past the caps now (age moves on while the collector is away)."""
        with self._full_disk_waits():
            with self._transaction() as db:
                self._cap_sweeps(db)
                return self._enforce_caps(db)
        return 0, 0

    @contextlib.contextmanager
    def _full_disk_waits(self) -> Iterator[None]:
        """Let a write that a full disk refused wait for the next one (nothing is lost by it)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if not disk_full(e):
                raise

    def _enforce_caps(self, db: sqlite3.Connection) -> tuple[int, int]:
        cutoff = self.clock() - self.max_age_seconds
        old = db.execute("DELETE FROM records WHERE spooled_at < ?", (cutoff,)).rowcount
        (depth,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
        full = 0
        if depth > self.max_records:
            full = db.execute(
                "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?)",
                (depth - self.max_records,),
            ).rowcount
        self._count(db, "dropped_old", old)
        self._count(db, "dropped_full", full)
        return full, old

    def _count(self, db: sqlite3.Connection, name: str, n: int) -> None:
        if n:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, n),
            )

    def peek(self, limit: int, skip: Sequence[str] = ()) -> list[Spooled]:
        """Return up to ``limit`` records, oldest first, without removing them (nor ``skip``)."""
        marks = ",".join("?" * len(skip))
        skip = (*skip, *self.gone)
        marks = ",".join("?" * len(skip))
        rows = self._db.execute(
            f"SELECT id, body FROM records WHERE id NOT IN ({marks}) ORDER BY seq LIMIT ?",
            (*skip, limit),
        ).fetchall()
        return [Spooled(i, b) for i, b in rows]

    def strike(self, record_id: str, status: int) -> int:
        """Count one more refusal of a record with ``status``; return how many in a row.

        A refusal with another status starts the count again: only the same answer, again and
        again, says the record itself is at fault.
        """
        with self._full_disk_waits(), self._transaction() as db:
            db.execute(
                "INSERT INTO strikes (id, status, count) VALUES (?, ?, 1) ON CONFLICT(id) DO "
                "UPDATE SET count = CASE WHEN status = excluded.status THEN count + 1 ELSE 1 END, "
                "status = excluded.status",
                (record_id, status),
            )
            (n,) = db.execute("SELECT count FROM strikes WHERE id = ?", (record_id,)).fetchone()
            return int(n)
        return 0

    def strikes(self, record_id: str) -> int:
        """Return how many times in a row the collector refused this record (0: never)."""
        row = self._db.execute("SELECT count FROM strikes WHERE id = ?", (record_id,)).fetchone()
        return int(row[0]) if row else 0

    def acknowledge(self, ids: Sequence[str]) -> None:
        """Remove records the collector acknowledged (2xx), and note the time of the upload.

        On a full disk they leave in memory only: peek skips them, the next commit removes
        them, and if the process dies first they are sent again (the collector ignores them).
        """
        self.gone.update(ids)  # the transaction deletes them first, and counts them delivered
        with self._full_disk_waits(), self._transaction() as db:
            _delete(db, "strikes", ids)
            db.execute(
                "INSERT OR REPLACE INTO facts (name, value) VALUES ('last_upload_at', ?)",
                (rfc3339(self.clock(), "seconds"),),
            )

    def quarantine(self, ids: Sequence[str], reason: str) -> int:
        """Move records the collector refuses for good aside; return how many moved."""
        marks = ",".join("?" * len(ids))
        with self._full_disk_waits(), self._transaction() as db:
            db.execute(
                "INSERT INTO quarantine (id, spooled_at, quarantined_at, reason, body, version) "
                f"SELECT id, spooled_at, ?, ?, body, ? FROM records WHERE id IN ({marks}) "
                "ORDER BY seq",
                (self.clock(), reason[:500], self.version, *ids),
            )
            moved = _delete(db, "records", ids)
            _delete(db, "strikes", ids)
            self._count(db, "quarantined", moved)
            db.execute(
                "DELETE FROM quarantine WHERE seq <= (SELECT MAX(seq) FROM quarantine) - ?",
                (QUARANTINE_MAX,),
            )
            return moved
        return 0

    def _take(self, rescue: salvage.Rescue) -> None:
        """Spool again what was read from a damaged file, and note the repair for `status`."""
        note = {
            "at": rfc3339(self.clock(), "seconds"),
            "why": rescue.why[:200],
            "moved_to": rescue.moved_to,
            "salvaged": len(rescue.records),
        }
        oldest_first = sorted(rescue.records, key=lambda r: r[1])
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO records (id, spooled_at, body) VALUES (?, ?, ?)",
                oldest_first,
            )
            db.execute(
                "INSERT OR REPLACE INTO facts (name, value) VALUES ('salvage', ?)",
                (json.dumps(note),),
            )

    def _release_quarantine(self) -> int:
        """Put back in the outbox what another version of the probe quarantined; return how many."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO records (id, spooled_at, body) SELECT id, spooled_at, body "
                "FROM quarantine WHERE version != ? ORDER BY seq",
                (self.version,),
            )
            return int(
                db.execute("DELETE FROM quarantine WHERE version != ?", (self.version,)).rowcount
            )

    def quarantined(self) -> list[tuple[str, str]]:
        """Return the (id, reason) of the quarantined records, oldest first."""
        return self._db.execute("SELECT id, reason FROM quarantine ORDER BY seq").fetchall()

    def depth(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM records").fetchone()
        return max(0, int(n) - len(self.gone))

    def stats(self) -> SpoolStats:
        """The figures `status` shows, with what a full disk holds back in memory."""
        s = read_stats(self._db)
        return dataclasses.replace(
            s,
            depth=s.depth - len(self.gone),
            delivered=s.delivered + len(self.gone),
            not_stored=s.not_stored + self.unstored,
        )


def _connect(path: Path, exclusive: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit
    try:
        if exclusive:  # set before the first access: the WAL index then lives in memory
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # WAL+NORMAL may lose the last commits
        db.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        db.close()
        raise
    return db


def _delete(db: sqlite3.Connection, table: str, ids: Sequence[str]) -> int:
    marks = ",".join("?" * len(ids))
    return db.execute(f"DELETE FROM {table} WHERE id IN ({marks})", tuple(ids)).rowcount
