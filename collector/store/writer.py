"""SQLite's one writer: taken in turns across threads and processes, and shared by the batches
that wait for it (group commit).

SQLite lets one transaction write at a time. Left to SQLite, a writer that finds the file
locked polls it in the busy handler, sleeping up to 100 ms a try, and leaves the lock idle
meanwhile (measured: batch p99 above 2 s with one process, 1.4 s with two). Here writers take
turns on a lock the kernel hands over as soon as it is released: a thread lock for the threads
of one process, then an ``flock`` on ``<database>-writer`` for the collector processes sharing
the file. While a turn is taken, batches that arrive wait together; the next thread to get the
turn stores them all in one transaction, one sync to disk for all (docs/benchmarks.md §3.3).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from collector.store.errors import StoreUnavailable

LOG = logging.getLogger("surblocage.collector.store")
T = TypeVar("T")
R = TypeVar("R")


class WriterTurn:
    """The writer's turn (a context manager): this process's threads, then its processes.

    The lock file is opened at the first write, read-only (``flock`` needs no more), so that a
    reader (an export run by another user) neither creates it nor needs to. Where it cannot be
    opened, processes fall back to SQLite's busy handler: slower under contention, as correct.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}-writer" if database and database != ":memory:" else None
        self._fd: int | None = None

    def __enter__(self) -> WriterTurn:
        self._threads.acquire()
        try:
            if self._fd is None and self._path is not None:
                self._fd = self._open(self._path)
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def _open(self, path: str) -> int | None:
        try:
            return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            LOG.warning(
                "writer lock unavailable: processes sharing the database wait in SQLite instead",
                extra={"fields": {"path": path, "error": e.strerror}},
            )
            self._path = None  # warned once
            return None

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class _Waiting(Generic[T, R]):
    job: T
    size: int
    result: R | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit(Generic[T, R]):
    """Jobs waiting for the writer's turn, done by whichever thread gets it next."""

    def __init__(self, turn: WriterTurn, limit: int) -> None:
        self.turn, self.limit = turn, limit  # limit: the sum of the jobs' sizes in one group
        self._waiting: list[_Waiting[T, R]] = []
        self._queue = threading.Lock()

    def waiting(self) -> int:
        return len(self._waiting)

    def submit(
        self,
        job: T,
        size: int,
        together: Callable[[list[T]], list[R]],
        alone: Callable[[T], R],
    ) -> R:
        """Return ``alone(job)``'s result, or ``job``'s part of ``together(jobs)`` when other
        jobs waited with it; ``together`` is one transaction, all or nothing: if it raises,
        each job is done ``alone`` and an error is only its own job's."""
        me: _Waiting[T, R] = _Waiting(job, size)
        with self._queue:
            self._waiting.append(me)
        with self.turn:
            while not me.done:  # no thread took it meanwhile: this one does what waits,
                self._run(together, alone)  # a group at a time, up to its own job
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def _run(self, together: Callable[[list[T]], list[R]], alone: Callable[[T], R]) -> None:
        taken: list[_Waiting[T, R]] = []
        with self._queue:
            size = 0
            while self._waiting and (not taken or size + self._waiting[0].size <= self.limit):
                taken.append(self._waiting.pop(0))
                size += taken[-1].size
        try:
            if len(taken) > 1 and _together(taken, together):
                return
            for w in taken:
                try:
                    w.result = alone(w.job)
                except Exception as e:  # handed to the job's own caller
                    w.error = e
                w.done = True
        finally:  # interrupted: no waiting caller is left without an answer
            for w in taken:
                if not w.done:
                    w.error, w.done = StoreUnavailable("the write was interrupted"), True


def _together(taken: list[_Waiting[T, R]], together: Callable[[list[T]], list[R]]) -> bool:
    try:
        results = together([w.job for w in taken])
    except Exception:  # rolled back whole: each job is done alone
        return False
    for w, result in zip(taken, results, strict=True):
        w.result, w.done = result, True
    return True
