"""The Store: the collector's one handle on its database, owning connections and transactions.

Every method is synchronous and thread-safe; from asyncio call it in a worker thread
(``await asyncio.to_thread(store.insert_batch, rows)``). A method that returns has committed.
Database failures surface as ``StoreUnavailable``, bad arguments as ``ValueError``.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.exc

from collector.store import measurements, probes, versioning
from collector.store.engine import WRITE, create_engine, unavailable_on_failure
from collector.store.errors import StoreUnavailable
from collector.store.measurements import InsertOutcome, MeasurementRow
from collector.store.probes import ProbeRow
from collector.store.query import MeasurementQuery, Page, decode_cursor
from collector.store.writer import GroupCommit, WriterTurn

EXPORT_CHUNK = 500
# PostgreSQL's "deadlock detected" and "serialization failure": the transaction was rolled back
# whole and may simply run again.
RETRY_SQLSTATES = frozenset({"40P01", "40001"})
INSERT_ATTEMPTS = 3
# SQLite: batches waiting for the writer are stored together, one transaction and one sync to
# disk for all of them (a group commit), up to this many rows.
GROUP_ROWS = 2000
T = TypeVar("T")
NewRowsWriter = Callable[[sa.Connection, Sequence[MeasurementRow]], None]
"""What else a batch writes for its new rows, in the batch's own transaction."""


def open_store(url: str, on_new_rows: NewRowsWriter | None = None) -> Store:
    """Return a Store for ``sqlite:///PATH`` or ``postgresql://...``; ValueError if the URL is bad.

    ``on_new_rows``: what each batch also writes for its new rows (the judge's marks and
    addresses: collector.judge.open_store). Opening does not connect; call ``check_schema()``
    to find out whether the database answers and is migrated.
    """
    return Store(create_engine(url), on_new_rows)


class Store:
    """Measurements and probes in SQLite or PostgreSQL (see the package docstring)."""

    def __init__(self, engine: sa.Engine, on_new_rows: NewRowsWriter | None = None) -> None:
        self.engine = engine
        self.on_new_rows = on_new_rows
        self._writer = engine.execution_options(**{WRITE: True})
        # SQLite has one writer: threads and processes take turns (collector.store.writer)
        self._turns: WriterTurn | None = None
        self._group: GroupCommit[Any, InsertOutcome] | None = None
        if engine.dialect.name == "sqlite":
            self._turns = WriterTurn(engine.url.database)
            self._group = GroupCommit(self._turns, GROUP_ROWS)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()
        if self._turns is not None:
            self._turns.close()

    def check_schema(self) -> None:
        """Raise SchemaMismatch unless migrated to head; StoreUnavailable if unreachable."""
        versioning.check_schema(self.engine)

    def insert_batch(
        self, rows: Sequence[MeasurementRow], seen: ProbeSeen | None = None
    ) -> InsertOutcome:
        """Store the rows whose id is new, all in one transaction; return once committed.

        A batch is stored whole or not at all. Resubmitting it stores nothing twice and returns
        ``inserted=0`` with every distinct id counted in ``duplicates``. In the same
        transaction, ``on_new_rows`` writes what it derives from the new rows (the judge marks
        their pairs), and ``seen`` records that the probe was seen, as ``touch_probe`` does.

        On SQLite, batches that arrive while another is being written wait for the writer's
        turn and are then stored together, in one transaction (group commit: one sync to disk
        for all, docs/benchmarks.md §3.3); each still gets its own outcome, as if stored alone.
        """
        if self._group is None:
            return self.write(self._store_batch, rows, seen)
        return self._group.submit((rows, seen), len(rows), self._store_together, self._store_one)

    def _store_together(
        self, jobs: list[tuple[Sequence[MeasurementRow], ProbeSeen | None]]
    ) -> list[InsertOutcome]:
        with self._writing(turn=False) as conn:
            return [self._store_batch(conn, rows, seen) for rows, seen in jobs]

    def _store_one(self, job: tuple[Sequence[MeasurementRow], ProbeSeen | None]) -> InsertOutcome:
        with self._writing(turn=False) as conn:
            return self._store_batch(conn, *job)

    def probe_counts(
        self, silent_after_seconds: float, now: datetime.datetime
    ) -> list[tuple[str | None, int, int]]:
        """Return (network, live, silent) per network: live = seen in the last
        ``silent_after_seconds``. A probe's network is where it was last seen, else declared."""
        cutoff = now - datetime.timedelta(seconds=silent_after_seconds)
        counts: dict[str | None, list[int]] = {}
        for p in self.list_probes():
            live = p.last_seen_at is not None and p.last_seen_at >= cutoff
            tally = counts.setdefault(p.last_network or p.declared_network, [0, 0])
            tally[0 if live else 1] += 1
        ordered = sorted(counts.items(), key=lambda kv: kv[0] or "")
        return [(network, live, silent) for network, (live, silent) in ordered]

    def network_last_seen(self) -> list[tuple[str | None, float]]:
        """Return (network, unix time) of the last time a probe of each network was seen."""
        latest: dict[str | None, float] = {}
        for p in self.list_probes():
            if p.last_seen_at is not None:
                t = p.last_seen_at.timestamp()
                latest[p.last_network] = max(latest.get(p.last_network, t), t)
        return sorted(latest.items(), key=lambda kv: kv[0] or "")

    @contextlib.contextmanager
    def _writing(self, turn: bool = True) -> Iterator[sa.Connection]:
        """One write transaction, committed on leaving (SQLite: this process's turn first,
        unless the caller already has it)."""
        with contextlib.ExitStack() as stack:
            if self._turns is not None and turn:
                stack.enter_context(self._turns)
            stack.enter_context(unavailable_on_failure())
            yield stack.enter_context(self._writer.begin())

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one write transaction, again after a deadlock; return
        what it returns once committed."""
        attempt = 1
        while True:
            try:
                with self._writing() as conn:
                    return fn(conn, *args)
            except StoreUnavailable as e:
                if attempt >= INSERT_ATTEMPTS or not _retryable(e.__cause__):
                    raise
                attempt += 1

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on one connection, for reads; return what it returns."""
        with unavailable_on_failure(), self.engine.connect() as conn:
            return fn(conn, *args)

    def _store_batch(
        self, conn: sa.Connection, rows: Sequence[MeasurementRow], seen: ProbeSeen | None
    ) -> InsertOutcome:
        outcome = measurements.insert(conn, rows)
        fresh = {r.id: r for r in reversed(rows) if r.id in outcome.new_ids}  # an id's first
        if fresh and self.on_new_rows is not None:
            self.on_new_rows(conn, list(fresh.values()))
        if seen is not None:
            probes.touch(conn, seen.probe_id, seen.asn, seen.network, seen.at)
        return outcome

    def query_measurements(self, q: MeasurementQuery) -> Page:
        """Return one page of records matching ``q``, in (started_at, id) order."""
        position = decode_cursor(q.cursor) if q.cursor is not None else None
        with unavailable_on_failure(), self.engine.connect() as conn:
            return measurements.select_page(conn, q, position, q.limit)

    def iter_measurements(self, q: MeasurementQuery) -> Iterator[dict[str, Any]]:
        """Yield every record matching ``q`` in order, reading chunk by chunk (constant memory).

        No connection is held between chunks, so an abandoned iterator costs nothing; records
        that arrive meanwhile and sort after the current position are included.
        """
        position = decode_cursor(q.cursor) if q.cursor is not None else None
        while True:
            with unavailable_on_failure(), self.engine.connect() as conn:
                page = measurements.select_page(conn, q, position, EXPORT_CHUNK)
            yield from page.items
            if page.next_cursor is None:
                return
            position = decode_cursor(page.next_cursor)

    def count_measurements(self, q: MeasurementQuery) -> int:
        """Return how many records match the filters of ``q`` (its cursor and limit ignored)."""
        with unavailable_on_failure(), self.engine.connect() as conn:
            return measurements.count(conn, q)

    def register_probe(
        self,
        probe_id: str,
        token_hash: str,
        declared_asn: int | None,
        declared_network: str | None,
        now: datetime.datetime,
        *,
        token_expires_at: datetime.datetime | None = None,
        source: str | None = None,
    ) -> ProbeRow:
        """Register a probe; ValueError if the id or token hash is taken."""
        with self._writing() as conn:
            return probes.register(
                conn,
                probe_id,
                token_hash,
                declared_asn,
                declared_network,
                now,
                token_expires_at,
                source,
            )

    def renew_token(
        self,
        probe_id: str,
        given_hash: str,
        new_hash: str,
        expires_at: datetime.datetime,
        given_expires_at: datetime.datetime | None,
    ) -> bool:
        """Give a probe a new token (collector.store.probes.renew_token)."""
        with self._writing() as conn:
            return probes.renew_token(
                conn, probe_id, given_hash, new_hash, expires_at, given_expires_at
            )

    def key(self, name: str) -> str:
        """Return the collector's secret ``name``, made on first use (store.probes.key)."""
        with self._writing() as conn:
            return probes.key(conn, name)

    def probe_by_token_hash(self, token_hash: str) -> ProbeRow | None:
        """Return the probe holding this token hash, or None."""
        with unavailable_on_failure(), self.engine.connect() as conn:
            return probes.by_token_hash(conn, token_hash)

    def probe_by_id(self, probe_id: str) -> ProbeRow | None:
        """Return the probe with this id, or None."""
        with unavailable_on_failure(), self.engine.connect() as conn:
            return probes.by_id(conn, probe_id)

    def touch_probe(
        self, probe_id: str, asn: int | None, network: str | None, now: datetime.datetime
    ) -> bool:
        """Record when and on which network a probe was last seen; False if it is unknown."""
        with self._writing() as conn:
            return probes.touch(conn, probe_id, asn, network, now)

    def list_probes(self) -> list[ProbeRow]:
        """Return every registered probe, by id."""
        with unavailable_on_failure(), self.engine.connect() as conn:
            return probes.all_probes(conn)


@dataclass(frozen=True)
class ProbeSeen:
    """A probe seen at ``at`` on a network: what ``insert_batch`` records beside its rows."""

    probe_id: str
    asn: int | None
    network: str | None
    at: datetime.datetime


def _retryable(cause: BaseException | None) -> bool:
    if not isinstance(cause, sa.exc.DBAPIError):
        return False
    return getattr(cause.orig, "sqlstate", None) in RETRY_SQLSTATES
