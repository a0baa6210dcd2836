"""Exports: JSONL and CSV from the command and the route equal the query API; Parquet round-trips;
a streamed export reads the store lazily."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import pathlib
import pty
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pyarrow.parquet
import pytest

from collector import cli, export
from collector.judge import open_store
from collector.store import MeasurementQuery, Store, StoreUnavailable
from tests.collector.harness import ROOT, Collector, record, running
from tests.support import records

T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.UTC)
# a title that CSV must quote, and text that is not ASCII
AWKWARD = 'Canal+, "le direct"\nen clair — été'


def varied(n: int) -> dict[str, Any]:
    """Record n: three services, a time a minute apart, an awkward title on some."""
    service = ("mycanal", "netflix", "deezer")[n % 3]
    when = T0 + datetime.timedelta(minutes=n % 7, seconds=n)
    return record(n, service=service, started_at=when, title=AWKWARD if n % 4 == 0 else "ok")


@pytest.fixture
async def filled(db_url: str) -> AsyncIterator[tuple[Collector, str]]:
    """A collector over ``db_url`` holding 23 records from two probes."""
    async with running(db_url) as c:
        for numbers in (range(0, 12), range(12, 23)):
            _, token = await c.register(asn=3215, network="Orange")
            status, _ = await c.submit(token, {"records": [varied(n) for n in numbers]})
            assert status == 200
        yield c, db_url


def _row(item: dict[str, Any]) -> list[str]:
    f = export.flat(item)
    return ["" if f[c] is None else str(f[c]) for c in export.CSV_COLUMNS]


def expected_csv(items: list[dict[str, Any]]) -> list[list[str]]:
    return [list(export.CSV_COLUMNS), *(_row(i) for i in items)]


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("params", [{}, {"service": "netflix"}, {"status": "blocked"}])
async def test_route_jsonl_and_csv_equal_the_query_api(
    filled: tuple[Collector, str], params: dict[str, str]
) -> None:
    c, _ = filled
    items = await c.query_all(**params)
    assert items
    async with c.client.get("/api/v1/export", params=params) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-ndjson"
        assert parse_jsonl(await r.read()) == items
    async with c.client.get("/api/v1/export", params={**params, "format": "csv"}) as r:
        assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert parse_csv(await r.read()) == expected_csv(items)


async def test_csv_columns_say_what_the_record_says(filled: tuple[Collector, str]) -> None:
    c, _ = filled
    async with c.client.get("/api/v1/export", params={"format": "csv"}) as r:
        rows = parse_csv(await r.read())
    header, first = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert tuple(header) == export.CSV_COLUMNS
    assert len(rows) == 24
    assert first["id"] == records.record_id(0)
    assert first["service"] == "mycanal"
    assert first["url"] == "https://www.canalplus.com/"
    assert (first["status"], first["method"], first["detail"]) == ("blocked", "dns", "blockpage_ip")
    assert first["http_status"] == "200"
    assert first["resolver"] == "192.168.1.1"
    assert first["started_at"] == "2026-03-01T20:00:00Z"


def run_export(*args: str) -> int:
    return cli.main(["export", *args])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_command_equals_the_query_api(
    filled: tuple[Collector, str],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    c, url = filled
    items = await c.query_all(service="deezer")
    out = tmp_path / f"deezer.{fmt}"
    assert run_export("--db", url, "--format", fmt, "-o", str(out), "--service", "deezer") == 0
    data = out.read_bytes()
    assert (parse_jsonl(data) if fmt == "jsonl" else parse_csv(data)) == (
        items if fmt == "jsonl" else expected_csv(items)
    )
    assert capsys.readouterr().err == f"{len(items)} records written to {out}\n"
    assert not (tmp_path / f"deezer.{fmt}.partial").exists()


async def test_command_writes_to_standard_output(
    filled: tuple[Collector, str], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    c, url = filled
    since, until = "2026-03-01T20:03:00Z", "2026-03-01T20:05:00Z"
    items = await c.query_all(since=since, until=until)
    assert 0 < len(items) < 23
    assert run_export("--db", url, "--since", since, "--until", until) == 0
    captured = capsysbinary.readouterr()
    assert parse_jsonl(captured.out) == items
    assert captured.err == f"{len(items)} records written to standard output\n".encode()


async def test_parquet_round_trips(
    filled: tuple[Collector, str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, url = filled
    items = await c.query_all()
    monkeypatch.setattr(export, "PARQUET_ROW_GROUP_RECORDS", 5)
    out = tmp_path / "all.parquet"
    assert run_export("--db", url, "--format", "parquet", "--output", str(out)) == 0
    f = pyarrow.parquet.ParquetFile(out)
    assert f.metadata.num_row_groups == math.ceil(len(items) / 5)
    table = f.read()
    assert table.column_names == [*export.CSV_COLUMNS, "record"]
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    assert [json.loads(r.pop("record")) for r in rows] == items
    flats = [export.flat(i) for i in items]
    for row, flat in zip(rows, flats, strict=True):
        assert row["started_at"].isoformat().replace("+00:00", "Z") == flat["started_at"]
        row["started_at"] = row["received_at"] = flat["started_at"] = flat["received_at"] = None
    assert rows == flats


def test_parquet_without_pyarrow_is_a_usage_error(
    sqlite_url: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "x.parquet"
    assert run_export("--db", sqlite_url, "--format", "parquet", "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert "install surblocage[parquet]" in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--asn", "AS3215"], "argument --asn: expected a whole number"),
        (["--since", "yesterday"], "argument --since: expected an RFC 3339 time"),
        (["--status", "maybe"], "argument --status: 'maybe' is not one of"),
        (["--probe-id", "a\x00b"], "argument --probe-id: contains a NUL"),
        (["--format", "xml"], "argument --format: invalid choice"),
    ],
)
def test_bad_filters_are_usage_errors(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run_export("--db", sqlite_url, *args) == 2
    assert message in capsys.readouterr().err


def test_a_missing_database_is_named_and_not_created(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.db"
    assert run_export("--db", f"sqlite:///{path}") == 2
    assert f"no such database file: {path}" in capsys.readouterr().err
    assert not path.exists()


def test_progress_on_a_terminal(sqlite_url: str, tmp_path: pathlib.Path) -> None:
    with open_store(sqlite_url) as db:
        db.insert_batch([records.row(n) for n in range(1200)])
    controller, terminal = pty.openpty()
    out = tmp_path / "out.jsonl"
    argv = [sys.executable, "-m", "collector", "export", "--db", sqlite_url, "-o", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=terminal, stdout=subprocess.DEVNULL)
    os.close(terminal)
    seen = b""
    while True:
        try:
            data = os.read(controller, 4096)
        except OSError:  # EIO: the process closed its end of the terminal
            break
        if not data:
            break
        seen += data
    os.close(controller)
    assert proc.wait(timeout=60) == 0
    text = seen.decode()
    assert "\r500 records written" in text and "\r1000 records written" in text
    assert text.endswith(f"1200 records written\r\n1200 records written to {out}\r\n")


class CountingStore:
    """The real store, counting the records its iterator has handed out so far."""

    def __init__(self, store: Store, fail_after: int | None = None) -> None:
        self.store, self.handed, self.fail_after = store, 0, fail_after

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def iter_measurements(self, q: MeasurementQuery) -> Iterator[dict[str, Any]]:
        for item in self.store.iter_measurements(q):
            if self.handed == self.fail_after:
                raise StoreUnavailable("database unavailable: gone mid-export")
            self.handed += 1
            yield item


BIG_TITLE = "t" * 1500  # 20,000 records are then ~40 MB: more than any socket buffer holds


async def test_streamed_export_reads_the_store_lazily(sqlite_url: str) -> None:
    with open_store(sqlite_url) as db:
        for start in range(0, 20_000, 2_000):
            db.insert_batch([records.row(n, title=BIG_TITLE) for n in range(start, start + 2_000)])
        spy = CountingStore(db)
        async with running(sqlite_url, store=spy) as c, c.client.get("/api/v1/export") as r:
            assert r.headers["Transfer-Encoding"] == "chunked"
            first = json.loads(await r.content.readline())
            handed_when_the_first_arrived = spy.handed
            lines = 1
            async for _ in r.content:
                lines += 1
    assert first["id"] == records.record_id(0)
    assert handed_when_the_first_arrived < 20_000
    assert lines == 20_000
    assert spy.handed == 20_000


async def test_a_database_failing_mid_export_cuts_the_body(sqlite_url: str) -> None:
    with open_store(sqlite_url) as db:
        db.insert_batch([records.row(n) for n in range(700)])
        spy = CountingStore(db, fail_after=600)
        async with running(sqlite_url, store=spy) as c, c.client.get("/api/v1/export") as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


def test_a_reader_that_stops_early_is_not_a_failure(sqlite_url: str) -> None:
    with open_store(sqlite_url) as db:
        db.insert_batch([records.row(n) for n in range(3000)])  # more than a pipe holds
    argv = [sys.executable, "-m", "collector", "export", "--db", sqlite_url, "--format", "csv"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"id,started_at,")
    proc.stdout.close()  # as `export | head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert err == b""
