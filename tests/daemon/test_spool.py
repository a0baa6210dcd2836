"""The spool: durable, ordered, acknowledged, capped (oldest dropped and counted), quarantine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from probe.daemon.spool import Spool, stats_readonly
from probe.record import Measurement
from tests.support.records import nxdomain as measurement


class Clock:
    """The clock seam: seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


def test_records_survive_a_reopen_in_order_and_whole(path: Path) -> None:
    spool = Spool(path)
    for n in range(5):
        spool.add(measurement(n))
    spool.close()  # no clean shutdown needed: every add is its own committed transaction
    spool = Spool(path)
    got = spool.peek(10)
    assert [s.id for s in got] == [measurement(n).id for n in range(5)]
    assert Measurement.from_json(got[2].body) == measurement(2)


def test_the_database_is_wal_with_full_sync(path: Path) -> None:
    spool = Spool(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # synchronous is per connection: read the spool's own
    assert spool._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_the_same_record_is_spooled_once(path: Path) -> None:
    spool = Spool(path)
    spool.add(measurement(1))
    spool.add(measurement(1))
    assert spool.depth() == 1


def test_acknowledged_records_leave_and_are_counted(path: Path) -> None:
    clock = Clock()
    spool = Spool(path, clock=clock)
    for n in range(4):
        spool.add(measurement(n))
    first = spool.peek(2)
    spool.acknowledge([s.id for s in first])
    assert [s.id for s in spool.peek(10)] == [measurement(2).id, measurement(3).id]
    stats = spool.stats()
    assert (stats.depth, stats.delivered) == (2, 2)
    assert stats.last_upload_at == "2027-01-15T08:00:00Z"


def test_past_max_records_the_oldest_are_dropped_and_counted(path: Path) -> None:
    spool = Spool(path, max_records=3)
    dropped = [spool.add(measurement(n)) for n in range(5)]
    assert dropped == [(0, 0), (0, 0), (0, 0), (1, 0), (1, 0)]
    assert [s.id for s in spool.peek(10)] == [measurement(n).id for n in (2, 3, 4)]
    spool.close()
    stats = Spool(path, max_records=3).stats()  # the counter is kept on disk
    assert (stats.depth, stats.dropped_full, stats.dropped_old) == (3, 2, 0)


def test_records_older_than_max_age_are_dropped_and_counted(path: Path) -> None:
    clock = Clock()
    spool = Spool(path, max_age_days=1, clock=clock)
    spool.add(measurement(1))
    clock.now += 3600
    spool.add(measurement(2))
    clock.now += 86400 - 1800  # record 1 is 1 day and 30 min old, record 2 23h30
    assert spool.prune() == (0, 1)
    assert [s.id for s in spool.peek(10)] == [measurement(2).id]
    assert spool.stats().dropped_old == 1


def test_quarantine_moves_records_aside_and_counts_them(path: Path) -> None:
    spool = Spool(path)
    for n in range(3):
        spool.add(measurement(n))
    assert spool.quarantine([measurement(1).id], "HTTP 400: records[0].target.category") == 1
    assert [s.id for s in spool.peek(10)] == [measurement(0).id, measurement(2).id]
    assert spool.quarantined() == [(measurement(1).id, "HTTP 400: records[0].target.category")]
    assert spool.stats().quarantined == 1


def test_status_reads_the_figures_without_writing(path: Path) -> None:
    spool = Spool(path, max_records=1)
    spool.add(measurement(1))
    spool.add(measurement(2))
    stats = stats_readonly(path)
    assert stats is not None
    assert (stats.depth, stats.dropped_full) == (1, 1)
    assert stats_readonly(path.with_name("absent.db")) is None


def test_strikes_count_the_same_refusal_in_a_row(path: Path) -> None:
    spool = Spool(path)
    spool.add(measurement(1))
    rid = measurement(1).id
    assert [spool.strike(rid, 500) for _ in range(3)] == [1, 2, 3]
    assert spool.strike(rid, 400) == 1  # another answer: the count starts again
    assert spool.strikes(rid) == 1
    spool.acknowledge([rid])
    assert spool.strikes(rid) == 0


def test_quarantined_records_go_back_to_the_outbox_with_a_new_version(path: Path) -> None:
    spool = Spool(path, version="1.0")
    for n in range(3):
        spool.add(measurement(n))
    spool.quarantine([measurement(1).id], "HTTP 500: boom")
    spool.close()
    same = Spool(path, version="1.0")
    assert same.released == 0 and same.stats().quarantine_held == 1
    same.close()
    upgraded = Spool(path, version="1.1")
    assert upgraded.released == 1
    assert sorted(s.id for s in upgraded.peek(10)) == sorted(measurement(n).id for n in range(3))
    assert upgraded.quarantined() == []
    assert Measurement.from_json(upgraded.peek(10)[-1].body) == measurement(1)


def test_a_spool_from_before_versioned_quarantine_opens(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE quarantine (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, "
        "spooled_at REAL NOT NULL, quarantined_at REAL NOT NULL, reason TEXT NOT NULL, "
        "body TEXT NOT NULL);"
    )
    db.execute(
        "INSERT INTO quarantine (id, spooled_at, quarantined_at, reason, body) "
        "VALUES (?, 1, 2, 'HTTP 400', ?)",
        (measurement(7).id, measurement(7).to_json()),
    )
    db.commit()
    db.close()
    spool = Spool(path)
    assert spool.released == 1  # quarantined by an older probe: tried again
    assert [s.id for s in spool.peek(10)] == [measurement(7).id]


def spool_of(path: Path, n: int) -> list[str]:
    """Write a spool of ``n`` records, all on disk (no log left); return their ids."""
    spool = Spool(path)
    for i in range(n):
        spool.add(measurement(i))
    spool.close()  # the last connection's close checkpoints the log into the file
    assert not path.with_name("spool.db-wal").exists()
    return [measurement(i).id for i in range(n)]


def test_a_truncated_spool_is_moved_aside_and_its_readable_records_salvaged(path: Path) -> None:
    ids = spool_of(path, 2000)
    whole = path.read_bytes()
    cut = len(whole) // 2
    path.write_bytes(whole[:cut])
    texts = {measurement(n).id: measurement(n).to_json().encode() for n in range(len(ids))}
    readable = {i for i in ids if texts[i] in whole[:cut]}
    assert len(readable) > 500  # the half that is left holds many whole records
    spool = Spool(path, clock=Clock())
    got = {s.id for s in spool.peek(5000)}
    assert readable <= got <= set(ids)  # none of the readable ones lost, nothing invented
    aside = path.with_name("spool.db.corrupt-20270115T080000Z")
    assert aside.read_bytes() == whole[:cut]  # the damaged file is kept as it was
    note = spool.stats().salvage
    assert note is not None
    assert (note["moved_to"], note["salvaged"]) == (str(aside), len(got))
    assert "malformed" in str(note["why"])
    assert stats_readonly(path) == spool.stats()  # `status` reads the note too


def test_a_zero_byte_spool_is_moved_aside_and_reported(path: Path) -> None:
    path.write_bytes(b"")
    spool = Spool(path, clock=Clock())
    aside = path.with_name("spool.db.corrupt-20270115T080000Z")
    assert aside.exists() and aside.stat().st_size == 0
    note = spool.stats().salvage
    assert note == {"at": "2027-01-15T08:00:00Z", "why": "zero bytes",
                    "moved_to": str(aside), "salvaged": 0}  # fmt: skip
    spool.add(measurement(1))
    assert spool.depth() == 1


def test_a_sound_spool_is_not_touched(path: Path) -> None:
    spool_of(path, 3)
    spool = Spool(path)
    assert spool.rescue is None and spool.stats().salvage is None and spool.depth() == 3
    assert [p.name for p in path.parent.iterdir() if "corrupt" in p.name] == []


def test_a_zero_byte_spool_beside_its_log_gives_back_the_records_of_the_log(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live" / "spool.db"
    live.parent.mkdir()
    spool = Spool(live)
    for n in range(200):
        spool.add(measurement(n))
    log = live.with_name("spool.db-wal").read_bytes()  # as a crash leaves it: not checkpointed
    path = tmp_path / "spool.db"
    path.write_bytes(b"")
    path.with_name("spool.db-wal").write_bytes(log)
    in_log = {measurement(n).id for n in range(200) if measurement(n).to_json().encode() in log}
    assert len(in_log) > 100
    repaired = Spool(path, clock=Clock())
    assert {s.id for s in repaired.peek(500)} >= in_log
    aside = path.with_name("spool.db.corrupt-20270115T080000Z")
    assert aside.with_name(aside.name + "-wal").read_bytes() == log  # kept, not replayed
    assert repaired.stats().salvage == {
        "at": "2027-01-15T08:00:00Z", "why": "zero bytes", "moved_to": str(aside),
        "salvaged": repaired.depth(),
    }  # fmt: skip
