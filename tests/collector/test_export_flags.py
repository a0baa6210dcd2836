"""`export --what flags`: JSON Lines and CSV equal GET /api/v1/flags for the same filters; Parquet
round-trips; a filter of the other kind is a usage error on one line."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import pathlib
import pty
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pyarrow.parquet
import pytest

from collector import cli, export, flag_diagnostics
from collector.judge import Findings, open_store
from collector.store import MeasurementRow
from tests.collector.harness import ROOT, Collector, running
from tests.support.flags import T0, ingest, look

# the columns the export promises (README, `export --help`), spelled out to catch a change
HEADER = [
    "id",
    "asn",
    "network",
    "service",
    "category",
    "method",
    "state",
    "first_seen",
    "last_seen",
    "closed_at",
    "probes",
    "probe_ids",
    "networks",
    "control",
    "confidence",
    "evidence",
    "resolver",
    "scope",
    # the scalars of the flag's diagnostics (tests/collector/test_diagnostics.py)
    "diag_probes",
    "diag_skipped",
    "diag_dns_injection_on_path",
    "diag_dns_injection_race",
    "diag_dns_injection_none",
    "diag_reset_origin_server",
    "diag_reset_origin_path",
    "diag_reset_origin_unknown",
    "diag_location_hop",
    "diag_location_address",
    "diag_location_asn",
    "diag_location_network",
    "diag_location_probes",
]


def bein(probe: str, minutes: int, status: str = "blocked") -> MeasurementRow:
    """A Free probe's look at beinsports: blocked at the address (tcp_ip), or reached."""
    method = "tcp_ip" if status == "blocked" else None
    return look(probe, minutes, status, method, network="Free", service="beinsports")


def seed(url: str) -> None:
    """Four flags: Orange mycanal dns closed then reopened, Free beinsports tcp_ip closed, SFR
    deezer tls open (one fingerprinted probe, seen twice: more evidence than probes)."""
    with open_store(url) as store:
        db = Findings(store)
        ingest(db, look("o1", 0), look("o2", 1))
        ingest(db, bein("f1", 10))
        ingest(db, bein("f2", 11))
        ingest(db, bein("f1", 30, "ok"), bein("f2", 31, "ok"))
        for minutes in (40, 45):
            sfr = look("s1", minutes, method="tls", network="SFR", service="deezer", blockpage="x")
            ingest(db, sfr)
        ingest(db, look("o1", 60, "ok", None), look("o2", 61, "ok", None))
        ingest(db, look("o1", 120), look("o2", 121))


@pytest.fixture
async def flagged(db_url: str) -> AsyncIterator[tuple[Collector, str]]:
    """A collector over ``db_url`` holding the four flags of ``seed``."""
    seed(db_url)
    async with running(db_url) as c:
        yield c, db_url


async def api_flags(c: Collector, **params: str) -> list[dict[str, Any]]:
    async with c.client.get("/api/v1/flags", params=params) as r:
        assert r.status == 200, await r.text()
        flags: list[dict[str, Any]] = (await r.json())["flags"]
        return flags


def csv_row(f: dict[str, Any]) -> list[str]:
    """The CSV row the export promises for a flag of the API, built without the exporter."""
    texts = [f[k] for k in ("id", "asn", "network", "service", "category", "method", "state")]
    times = [f["first_seen"], f["last_seen"], f["closed_at"] or ""]
    ids = [str(len(f["probes"])), " ".join(f["probes"]), str(f["networks"]), f["control"]]
    d = f["diagnostics"]
    counts = [d["probes"], d["skipped"], *d["dns_injection"].values(), *d["reset_origin"].values()]
    found = (d["location"] or dict.fromkeys(range(5))).values()
    location = ["" if v is None else str(v) for v in found]
    return [
        *map(str, texts), *times, *ids, str(f["confidence"]), " ".join(f["evidence"]),
        f["resolver"], f["scope"], *map(str, counts), *location,
    ]  # fmt: skip


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def run_export(*args: str) -> int:
    return cli.main(["export", "--what", "flags", *args])


def at(minutes: int) -> str:
    return (T0 + datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


FILTERS = [
    ({}, 4),
    ({"state": "open"}, 2),
    ({"state": "closed", "service": "mycanal"}, 1),
    ({"network": "Free"}, 1),
    ({"asn": "15557"}, 1),
    ({"category": "iptv_legal"}, 2),
    ({"method": "tcp_ip"}, 1),
    ({"since": at(20), "until": at(35)}, 2),
]


@pytest.mark.parametrize(("params", "n"), FILTERS, ids=lambda p: json.dumps(p))
async def test_jsonl_and_csv_equal_the_flags_api(
    flagged: tuple[Collector, str],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    params: dict[str, str],
    n: int,
) -> None:
    c, url = flagged
    flags = await api_flags(c, **params)
    assert len(flags) == n
    options = [a for k, v in params.items() for a in (f"--{k}", v)]
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"flags.{fmt}"
        assert run_export("--db", url, "--format", fmt, "-o", str(out), *options) == 0
        assert capsys.readouterr().err == f"{n} flags written to {out}\n"
        assert not (tmp_path / f"flags.{fmt}.partial").exists()
        data = out.read_bytes()
        if fmt == "jsonl":
            assert parse_jsonl(data) == flags
        else:
            assert parse_csv(data) == [HEADER, *(csv_row(f) for f in flags)]


async def test_csv_says_what_the_flag_says(
    flagged: tuple[Collector, str], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    c, url = flagged
    assert run_export("--db", url, "--format", "csv", "--network", "SFR") == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b"1 flags written to standard output\n"
    header, row = parse_csv(captured.out)
    sfr = dict(zip(header, row, strict=True))
    [flag] = await api_flags(c, network="SFR")
    assert sfr["id"] == flag["id"] and len(sfr["id"]) == 32
    assert (sfr["asn"], sfr["service"], sfr["category"]) == ("15557", "deezer", "music")
    assert (sfr["method"], sfr["state"], sfr["closed_at"]) == ("tls", "open", "")
    assert (sfr["first_seen"], sfr["last_seen"]) == (at(40), at(45))
    assert (sfr["probes"], sfr["probe_ids"]) == ("1", "s1")
    assert sfr["evidence"] == " ".join(flag["evidence"]) and len(flag["evidence"]) == 2
    assert 0 < float(sfr["confidence"]) <= 1
    assert run_export("--db", url, "--format", "csv", "--network", "Orange") == 0
    orange = [
        dict(zip(header, r, strict=True)) for r in parse_csv(capsysbinary.readouterr().out)[1:]
    ]
    assert [(r["state"], r["closed_at"], r["probe_ids"]) for r in orange] == [
        ("open", "", "o1 o2"),
        ("closed", at(61), "o1 o2"),
    ]
    assert all(len(r["evidence"].split(" ")) >= 2 for r in orange)


async def test_parquet_round_trips(
    flagged: tuple[Collector, str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, url = flagged
    flags = await api_flags(c)
    monkeypatch.setattr(export, "PARQUET_ROW_GROUP_RECORDS", 3)
    out = tmp_path / "flags.parquet"
    assert run_export("--db", url, "--format", "parquet", "--output", str(out)) == 0
    f = pyarrow.parquet.ParquetFile(out)
    assert f.metadata.num_row_groups == 2
    table = f.read()
    assert table.column_names == HEADER
    types = {name: str(table.schema.field(name).type) for name in HEADER}
    assert types["asn"] == "int64" and types["confidence"] == "double"
    assert types["first_seen"] == types["closed_at"] == "timestamp[us, tz=UTC]"
    assert types["probe_ids"] == types["evidence"] == "list<element: string>"
    rows = table.to_pylist()
    for row in rows:
        for key in ("first_seen", "last_seen", "closed_at"):
            if row[key] is not None:
                row[key] = row[key].isoformat().replace("+00:00", "Z")
    assert rows == [
        {
            **{k: v for k, v in f.items() if k != "diagnostics"},
            "probes": len(f["probes"]),
            "probe_ids": f["probes"],
            "evidence": f["evidence"],
            **flag_diagnostics.scalars(f["diagnostics"]),
        }
        for f in flags
    ]


def test_no_flags_is_a_header_and_a_count_of_zero(
    sqlite_url: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert run_export("--db", sqlite_url, "--format", "csv") == 0
    captured = capsysbinary.readouterr()
    assert parse_csv(captured.out) == [HEADER]
    assert captured.err == b"0 flags written to standard output\n"
    assert run_export("--db", sqlite_url) == 0
    assert capsysbinary.readouterr().out == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--what", "flags", "--domain", "x"], "argument --domain: not a filter of --what flags"),
        (["--what", "flags", "--status", "ok"], "argument --status: not a filter of --what flags"),
        (["--what", "flags", "--probe-id", "p"], "argument --probe-id: not a filter of --what"),
        (["--state", "open"], "argument --state: not a filter of --what measurements"),
        (["--category", "music"], "argument --category: not a filter of --what measurements"),
        (["--what", "flags", "--state", "maybe"], "argument --state: 'maybe' is not one of"),
        (["--what", "flags", "--category", "x"], "argument --category: 'x' is not one of"),
        (["--what", "flags", "--asn", "AS1"], "argument --asn: expected a whole number"),
        (["--what", "flags", "--method", "dnss"], "argument --method: 'dnss' is not one of"),
        (["--what", "flags", "--since", "today"], "argument --since: expected an RFC 3339"),
        (["--what", "everything"], "argument --what: invalid choice: 'everything'"),
    ],
)
def test_a_bad_combination_is_a_usage_error_on_one_line(
    sqlite_url: str,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    assert cli.main(["export", "--db", sqlite_url, "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{cli.PROG}: error: {message}")
    assert err.count("\n") == 1 and err.endswith("\n")
    assert not out.exists()


def test_progress_on_a_terminal_counts_flags(sqlite_url: str, tmp_path: pathlib.Path) -> None:
    seed(sqlite_url)
    controller, terminal = pty.openpty()
    out = tmp_path / "flags.csv"
    argv = [sys.executable, "-m", "collector", "export", "--what", "flags", "--format", "csv"]
    argv += ["--db", sqlite_url, "-o", str(out)]
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
    assert seen.decode() == f"\r4 flags written\r\n4 flags written to {out}\r\n"
    assert len(parse_csv(out.read_bytes())) == 5
