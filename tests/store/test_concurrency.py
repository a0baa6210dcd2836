"""Two collector processes ingesting overlapping batches into one database at the same time."""

from __future__ import annotations

import multiprocessing
import random

from collector.store import MeasurementQuery, Store
from tests.store import ingest_worker
from tests.support.records import record_id

RECORDS = range(1800)
BATCH = 100


def batches(numbers: list[int], seed: int) -> list[list[int]]:
    """Cut record numbers into batches, shuffled within and across batches."""
    shuffled = random.Random(seed).sample(numbers, len(numbers))
    return [shuffled[i : i + BATCH] for i in range(0, len(shuffled), BATCH)]


def test_two_processes_store_every_record_exactly_once(store: Store, db_url: str) -> None:
    first = list(RECORDS[:1200])
    second = list(RECORDS[600:])
    # the second collector also resubmits a few of its own batches, as a retrying probe would
    plan = [batches(first, 1), batches(second, 2)]
    plan[1] += plan[1][:2]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [
        context.Process(target=ingest_worker.ingest, args=(db_url, work, start, results))
        for work in plan
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=100) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [o[0] for o in outcomes] == ["ok", "ok"], [o[:2] for o in outcomes]
    assert [w.exitcode for w in workers] == [0, 0]
    assert sum(o[1] for o in outcomes) == 1800
    assert sum(o[2] for o in outcomes) == 600 + 2 * BATCH
    first_new, second_new = (o[3] for o in outcomes)
    assert not first_new & second_new
    assert first_new | second_new == {record_id(n) for n in RECORDS}
    stored = [item["id"] for item in store.iter_measurements(MeasurementQuery())]
    assert sorted(stored) == sorted(record_id(n) for n in RECORDS)
    assert store.count_measurements(MeasurementQuery()) == 1800
