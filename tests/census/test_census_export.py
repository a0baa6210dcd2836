"""`export --what census`: one row a (network, blocked address, domain), in JSON Lines, CSV and
Parquet, read back; the filters of GET /api/v1/census/addresses; chunks that end mid-flag."""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

import pyarrow.parquet
import pytest

from collector import cli, export_census
from collector.judge import open_store
from tests.census.conftest import X, Y, mixed
from tests.support.census_fill import CensusFill, at, text

HEADER = [
    "network", "asn", "ip", "domain", "rank", "intended", "method", "state", "first_seen",
    "last_seen", "closed_at",
]  # fmt: skip


@pytest.fixture
def filled(db_url: str) -> str:
    with open_store(db_url) as store:
        mixed(CensusFill(store))
    return db_url


def run(url: str, tmp_path: pathlib.Path, fmt: str, *filters: str) -> pathlib.Path:
    out = tmp_path / f"census.{fmt}"
    argv = ["export", "--db", url, "--what", "census", "--format", fmt, "-o", str(out)]
    assert cli.main([*argv, *filters]) == 0
    return out


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["network"], r["ip"], r["domain"], r["state"]) for r in rows]


# (network, address, domain, state) in (network key, address, first seen) order, ids in order
EVERY = [
    ("Orange", X, "a.example", "open"),
    ("Orange", X, "b.example", "open"),
    ("Orange", Y, "a.example", "open"),
    ("Orange", Y, "pirate.example", "open"),
    ("Free", X, "a.example", "open"),
    ("Free", X, "b.example", "open"),
    ("Free", Y, "a.example", "closed"),
    ("Free", Y, "pirate.example", "closed"),
    ("SFR", X, "a.example", "closed"),
    ("SFR", X, "b.example", "closed"),
    ("SFR", X, "moved.example", "closed"),  # on X while SFR's flag was open
]


def test_jsonl_has_every_row_with_the_flags_times(filled: str, tmp_path: pathlib.Path) -> None:
    out = run(filled, tmp_path, "jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(keys(rows)) == sorted(EVERY)
    [pirate] = [r for r in rows if r["network"] == "Free" and r["domain"] == "pirate.example"]
    assert pirate == {
        "network": "Free",
        "asn": 12322,
        "ip": Y,
        "domain": "pirate.example",
        "rank": 10,
        "intended": True,
        "method": "tcp_ip",
        "state": "closed",
        "first_seen": text(1),
        "last_seen": text(3),
        "closed_at": text(3),
    }


def test_csv_and_the_filters(filled: str, tmp_path: pathlib.Path) -> None:
    out = run(filled, tmp_path, "csv", "--network", "Free")
    with out.open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == HEADER
        rows = [dict(zip(HEADER, r, strict=True)) for r in reader]
    assert sorted(keys(rows)) == sorted(k for k in EVERY if k[0] == "Free")
    assert {r["intended"] for r in rows} == {"true", "false"}
    closed = run(filled, tmp_path, "jsonl", "--state", "closed", "--since", text(0.75))
    assert sorted(keys([json.loads(x) for x in closed.read_text().splitlines()])) == sorted(
        k for k in EVERY if k[0] == "Free" and k[3] == "closed"
    )


def test_parquet_reads_back_typed(filled: str, tmp_path: pathlib.Path) -> None:
    out = run(filled, tmp_path, "parquet", "--network", "SFR")
    table = pyarrow.parquet.read_table(out)
    assert table.column_names == HEADER
    rows = table.to_pylist()
    assert sorted(r["domain"] for r in rows) == ["a.example", "b.example", "moved.example"]
    assert {r["first_seen"] for r in rows} == {at(0)}
    assert {r["intended"] for r in rows} == {False}
    assert str(table.schema.field("intended").type) == "bool"


def test_a_flags_domains_come_in_chunks(filled: str) -> None:
    with open_store(filled) as store:
        whole = list(export_census.rows(store, {}))
        by_one = list(export_census.rows(store, {}, chunk=1))
    assert by_one == whole and len(whole) == len(EVERY)


def test_a_bad_filter_is_a_usage_error(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["export", "--db", filled, "--what", "census"]
    assert cli.main([*argv, "--state", "maybe"]) == 2
    assert cli.main([*argv, "--service", "mycanal"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("surblocage-collector: error: argument --state: ")
    assert err[1].startswith("surblocage-collector: error: argument --service: not a filter")
