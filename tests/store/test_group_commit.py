"""SQLite's writer: batches waiting for it are stored in one transaction (group commit), each
with the outcome it would have had alone, a batch that fails fails alone; and collectors
sharing the file take turns on a lock of the kernel's."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from collector import judge
from collector.store import MeasurementQuery, MeasurementRow, Store, migrate, open_store
from collector.store.writer import GroupCommit, WriterTurn, _Waiting
from tests.support.records import row


@pytest.fixture
def sqlite_store(tmp_path: pathlib.Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/surblocage.db"
    migrate(url)
    with judge.open_store(url) as s:  # batches noted for the judge, as the collector's are
        yield s


def commits(store: Store) -> list[int]:
    """A list that grows by one at every commit of the store's engine."""
    seen: list[int] = []
    sa.event.listen(store.engine, "commit", lambda _conn: seen.append(1))
    return seen


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def insert_while_busy(store: Store, batches: Sequence[Sequence[MeasurementRow]]) -> list[Any]:
    """Queue the batches in order behind a writer held busy, then let them go; return each
    batch's outcome, or the exception it raised."""
    results: list[Any] = [None] * len(batches)

    def insert(i: int) -> None:
        try:
            results[i] = store.insert_batch(batches[i])
        except Exception as e:  # the test compares it
            results[i] = e

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(len(batches))]
    with store._turns:  # type: ignore[union-attr]  # the writer is busy
        for i, t in enumerate(threads):
            t.start()
            wait_for(lambda i=i: store._group.waiting() == i + 1)  # type: ignore[union-attr]
    for t in threads:
        t.join(timeout=30)
    return results


def test_waiting_batches_share_one_commit_and_keep_their_own_outcomes(
    sqlite_store: Store,
) -> None:
    seen = commits(sqlite_store)
    batches = [
        [row(n) for n in range(10)],
        [row(n) for n in range(5, 15)],  # overlaps the first
        [row(n) for n in range(20, 30)],
        [row(n) for n in range(20, 30)],  # the third again, as a retrying probe sends it
    ]
    outcomes = insert_while_busy(sqlite_store, batches)
    assert len(seen) == 1
    assert [(o.inserted, o.duplicates) for o in outcomes] == [(10, 0), (5, 5), (10, 0), (0, 10)]
    assert outcomes[1].new_ids == {row(n).id for n in range(10, 15)}
    assert sqlite_store.count_measurements(MeasurementQuery()) == 25
    # marked for the judge in the same transaction
    assert judge.Findings(sqlite_store).pending_count() > 0


def test_a_batch_that_fails_fails_alone(sqlite_store: Store) -> None:
    seen = commits(sqlite_store)
    bad = row(40)
    object.__setattr__(bad, "doc_text", '{"note": "\ud800"}')  # not UTF-8: SQLite refuses it
    batches = [[row(n) for n in range(10)], [row(41), bad], [row(n) for n in range(50, 55)]]
    outcomes = insert_while_busy(sqlite_store, batches)
    assert isinstance(outcomes[1], UnicodeEncodeError)  # raised by sqlite3, to its caller only
    assert [(o.inserted, o.duplicates) for o in (outcomes[0], outcomes[2])] == [(10, 0), (5, 0)]
    assert len(seen) == 2  # the group rolled back, then each good batch on its own
    ids = {item["id"] for item in sqlite_store.iter_measurements(MeasurementQuery())}
    assert ids == {row(n).id for n in [*range(10), *range(50, 55)]}


def test_a_group_is_cut_at_the_row_limit(sqlite_store: Store) -> None:
    sqlite_store._group.limit = 20  # type: ignore[union-attr]
    seen = commits(sqlite_store)
    batches = [[row(n) for n in range(i * 10, i * 10 + 10)] for i in range(5)]
    outcomes = insert_while_busy(sqlite_store, batches)
    assert [o.inserted for o in outcomes] == [10] * 5
    assert len(seen) == 3  # 20 + 20 + 10 rows


def test_two_stores_on_one_file_take_turns(tmp_path: pathlib.Path) -> None:
    """The turn is an flock on <database>-writer: held by one store (as by another process),
    the other's writer waits for it, then goes on."""
    url = f"sqlite:///{tmp_path}/surblocage.db"
    migrate(url)
    with open_store(url) as first, open_store(url) as second:
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (second.insert_batch([row(1)]), done.set()), daemon=True
        )
        with first._turns:  # type: ignore[union-attr]
            writer.start()
            assert not done.wait(0.5)  # waits for the turn, not in SQLite's busy handler
        assert done.wait(10)
        assert (tmp_path / "surblocage.db-writer").exists()
        assert first.count_measurements(MeasurementQuery()) == 1


def test_without_a_lock_file_the_store_still_writes_and_says_so(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/surblocage.db"
    migrate(url)
    (tmp_path / "surblocage.db-writer").symlink_to(tmp_path / "missing" / "lock")
    with open_store(url) as s, caplog.at_level("WARNING", "surblocage"):
        assert s.insert_batch([row(1)]).inserted == 1
        assert s.insert_batch([row(2)]).inserted == 1
    [warning] = [r for r in caplog.records if "writer lock unavailable" in r.getMessage()]
    assert warning.fields["path"].endswith("surblocage.db-writer")  # type: ignore[attr-defined]


def test_a_job_behind_a_full_group_is_done_before_its_caller_returns() -> None:
    """The thread that gets the turn stores groups until its own job is done, even when the
    jobs queued before it fill more than one group."""
    group: GroupCommit[str, str] = GroupCommit(WriterTurn(None), limit=10)
    group._waiting.extend(_Waiting(f"earlier-{i}", 10) for i in range(3))  # queued, not taken
    groups: list[list[str]] = []

    def together(jobs: list[str]) -> list[str]:
        groups.append(jobs)
        return [f"stored {j}" for j in jobs]

    assert group.submit("mine", 10, together, lambda j: together([j])[0]) == "stored mine"
    assert groups == [["earlier-0"], ["earlier-1"], ["earlier-2"], ["mine"]]
    assert group.waiting() == 0
