"""What researchers read: order=asc|desc on every list, dates as time filters, CORS for the
public GET routes, HEAD wherever GET is, and the export's DNS failure columns."""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from collector import cli, export
from collector.config import ConfigError, load_config
from collector.judge import Findings
from probe import record as rec
from probe.times import MissingZone, parse_time_or_date
from tests.collector.harness import Collector, record, running
from tests.support import records
from tests.support.flags import ingest, look, shared

T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.UTC)
ORIGIN = "https://notebook.example"


def at_time(n: int) -> dict[str, Any]:
    """Record n: pairs of records share a start (the id breaks the tie), across midnight."""
    when = T0 + datetime.timedelta(hours=2 * (n // 2))
    return record(n, service=("mycanal", "deezer")[n % 2], started_at=when)


@pytest.fixture
async def filled(db_url: str) -> AsyncIterator[Collector]:
    """A collector holding 11 records, some of them started at the same instant."""
    async with running(db_url, **{"api.cors_origins": [ORIGIN]}) as c:
        _, token = await c.register(asn=3215, network="Orange")
        status, _ = await c.submit(token, {"records": [at_time(n) for n in range(11)]})
        assert status == 200
        yield c


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


async def get(c: Collector, path: str, **params: Any) -> tuple[int, Any]:
    async with c.client.get(path, params=params) as r:
        return r.status, await r.json()


# --- order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
async def test_paging_in_desc_is_the_exact_reverse_of_asc(filled: Collector, limit: int) -> None:
    ascending = await filled.query_all(limit=limit)
    descending = await filled.query_all(limit=limit, order="desc")
    assert len(ascending) == 11
    assert ids(descending) == ids(ascending)[::-1]
    assert ids(await filled.query_all(limit=limit, order="asc")) == ids(ascending)
    keys = [(i["started_at"], i["id"]) for i in ascending]
    assert keys == sorted(keys)  # the default is unchanged: oldest first


async def test_order_with_filters_and_the_export(filled: Collector) -> None:
    deezer = await filled.query_all(service="deezer", limit=2)
    assert ids(await filled.query_all(service="deezer", limit=2, order="desc")) == ids(deezer)[::-1]
    async with filled.client.get("/api/v1/export", params={"order": "desc"}) as r:
        assert r.status == 200
        lines = [json.loads(line) for line in (await r.read()).decode().splitlines()]
    assert ids(lines) == ids(await filled.query_all())[::-1]


@pytest.mark.parametrize(
    "path", ["/api/v1/measurements", "/api/v1/export", "/api/v1/flags", "/api/v1/collateral"]
)
async def test_an_unknown_order_is_a_400_naming_it(filled: Collector, path: str) -> None:
    status, answer = await get(filled, path, order="newest")
    assert status == 400
    assert answer["error"].startswith("order: 'newest' is not one of asc, desc")


async def test_flags_and_collateral_asc_are_the_exact_reverse_of_the_default(db_url: str) -> None:
    async with running(db_url, judge_in_background=False) as c:
        findings = Findings(c.store)
        ingest(findings, look("o1", 0, service="mycanal"), look("o2", 1, service="mycanal"))
        ingest(findings, look("o1", 5, service="deezer"), look("o2", 6, service="deezer"))
        services = ("mycanal", "beinsports", "deezer")
        for probe, minutes in (("f1", 10), ("f2", 11)):
            ingest(findings, *(shared(probe, minutes, s, network="Free") for s in services))
        for probe, minutes in (("s1", 20), ("s2", 21)):
            ingest(findings, shared(probe, minutes, "mycanal", network="SFR"))

        _, default = await get(c, "/api/v1/flags")
        _, latest_first = await get(c, "/api/v1/flags", order="desc")
        _, earliest_first = await get(c, "/api/v1/flags", order="asc")
        assert len(default["flags"]) == 6
        assert ids(latest_first["flags"]) == ids(default["flags"])
        assert ids(earliest_first["flags"]) == ids(default["flags"])[::-1]
        seen = [f["last_seen"] for f in default["flags"]]
        assert seen == sorted(seen, reverse=True)

        _, default = await get(c, "/api/v1/collateral")
        _, descending = await get(c, "/api/v1/collateral", order="desc")
        _, ascending = await get(c, "/api/v1/collateral", order="asc")
        rows = [(a["network"], len(a["services"])) for a in default["addresses"]]
        assert rows == [("Free", 3), ("SFR", 3)]
        assert descending["addresses"] == default["addresses"]
        assert ascending["addresses"] == default["addresses"][::-1]


async def test_the_export_command_takes_order_and_dates(
    filled: Collector, db_url: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "out.jsonl"
    argv = ["export", "--db", db_url, "--order", "desc", "--since", "2026-03-02", "-o", str(out)]
    assert cli.main(argv) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert ids(lines) == ids(await filled.query_all(since="2026-03-02T00:00:00Z"))[::-1]
    assert len(lines) == 7
    assert cli.main(["export", "--db", db_url, "--order", "up"]) == 2


# --- dates ---------------------------------------------------------------------------------


def test_a_date_alone_is_that_day_at_midnight_utc() -> None:
    assert parse_time_or_date("2026-03-02") == datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
    moment = parse_time_or_date("2026-03-02T01:00:00+01:00")
    assert moment == datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
    with pytest.raises(MissingZone):
        parse_time_or_date("2026-03-02T00:00:00")
    for bad in ("2026-02-30", "2026-3-2", "02-03-2026", "0001-01-01", "2026-03-02T25:00Z"):
        with pytest.raises(ValueError):
            parse_time_or_date(bad)


async def test_dates_filter_like_their_midnight_and_until_excludes_its_day(
    filled: Collector,
) -> None:
    # records start 2026-03-01 20:00, 22:00, then 2026-03-02 00:00, 02:00 ... 2026-03-02 04:00
    day_one = await filled.query_all(since="2026-03-01", until="2026-03-02")
    assert [i["started_at"][:10] for i in day_one] == ["2026-03-01"] * 4
    midnight = await filled.query_all(since="2026-03-02T00:00:00Z")
    assert ids(await filled.query_all(since="2026-03-02")) == ids(midnight)
    assert len(midnight) == 7
    assert ids(day_one + midnight) == ids(await filled.query_all())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-02-30", "since: expected an RFC 3339 time or a date YYYY-MM-DD"),
        ("2026-03-01T00:00:00", "since: give a time zone"),
        ("yesterday", "since: expected an RFC 3339 time or a date YYYY-MM-DD"),
    ],
)
async def test_a_bad_date_is_a_400_naming_it(filled: Collector, value: str, message: str) -> None:
    status, answer = await get(filled, "/api/v1/measurements", since=value)
    assert status == 400 and answer["error"].startswith(message)
    status, answer = await get(filled, "/api/v1/flags", since=value)
    assert status == 400 and answer["error"].startswith(message)


# --- CORS ----------------------------------------------------------------------------------


async def ask(c: Collector, method: str, path: str, **headers: str) -> tuple[int, Any, bytes]:
    async with c.client.request(method, path, headers=headers) as r:
        return r.status, r.headers, await r.read()


PUBLIC_READS = [
    "/api/v1/measurements",
    "/api/v1/export",
    "/api/v1/flags",
    "/api/v1/collateral",
    "/api/v1/openapi.json",
    "/api/v1/watchlist",  # a 404 here (no watchlist): an error answer is readable too
]


@pytest.mark.parametrize("path", PUBLIC_READS)
async def test_an_allowed_origin_may_read_the_public_get_routes(
    filled: Collector, path: str
) -> None:
    for method in ("GET", "HEAD"):
        _, headers, _ = await ask(filled, method, path, Origin=ORIGIN)
        assert headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in headers.getall("Vary")
        assert "Access-Control-Allow-Credentials" not in headers
        _, headers, _ = await ask(filled, method, path, Origin="https://evil.example")
        assert "Access-Control-Allow-Origin" not in headers
        assert "Origin" in headers.getall("Vary")


async def test_a_bad_query_answers_an_allowed_origin_too(filled: Collector) -> None:
    status, headers, body = await ask(filled, "GET", "/api/v1/measurements?limit=0", Origin=ORIGIN)
    assert status == 400 and json.loads(body)["error"].startswith("limit:")
    assert headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("path", ["/api/v1/measurements", "/api/v1/flags", "/api/v1/export"])
async def test_a_preflight_for_get_is_answered_204(filled: Collector, path: str) -> None:
    status, headers, body = await ask(
        filled, "OPTIONS", path, Origin=ORIGIN, **{"Access-Control-Request-Method": "GET"}
    )
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert "Authorization" not in headers["Access-Control-Allow-Headers"]
    assert "Origin" in headers.getall("Vary")


@pytest.mark.parametrize(
    ("path", "asked", "origin"),
    [
        ("/api/v1/measurements", "POST", ORIGIN),  # a GET route, but asked for POST
        ("/api/v1/probes", "POST", ORIGIN),  # POST routes: never
        ("/api/v1/control", "POST", ORIGIN),
        ("/api/v1/whoami", "GET", ORIGIN),  # answers about the caller: never
        ("/metrics", "GET", ORIGIN),  # not the public API
        ("/api/v1/measurements", "GET", "https://evil.example"),
    ],
)
async def test_no_other_preflight_is_answered(
    filled: Collector, path: str, asked: str, origin: str
) -> None:
    status, headers, _ = await ask(
        filled, "OPTIONS", path, Origin=origin, **{"Access-Control-Request-Method": asked}
    )
    assert status == 405
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("path", ["/api/v1/whoami", "/metrics", "/healthz", "/"])
async def test_private_and_non_api_reads_carry_no_cors(filled: Collector, path: str) -> None:
    _, headers, _ = await ask(filled, "GET", path, Origin=ORIGIN)
    assert "Access-Control-Allow-Origin" not in headers


async def test_a_post_never_carries_cors(filled: Collector) -> None:
    async with filled.client.post("/api/v1/probes", json={}, headers={"Origin": ORIGIN}) as r:
        assert r.status == 201
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_without_origins_no_cors_header_is_sent(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        _, headers, _ = await ask(c, "GET", "/api/v1/measurements", Origin=ORIGIN)
        assert not [h for h in headers if h.startswith("Access-Control-")]
        assert "Origin" not in headers.getall("Vary", [])
        status, headers, _ = await ask(
            c,
            "OPTIONS",
            "/api/v1/measurements",
            Origin=ORIGIN,
            **{"Access-Control-Request-Method": "GET"},
        )
        assert status == 405 and "Access-Control-Allow-Origin" not in headers


async def test_a_star_allows_every_origin_as_a_star(sqlite_url: str) -> None:
    async with running(sqlite_url, **{"api.cors_origins": ["*"]}) as c:
        _, headers, _ = await ask(c, "GET", "/api/v1/flags", Origin="https://anyone.example")
        assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "bad",
    [
        "https://example.org/",
        "https://example.org/path",
        "ftp://example.org",
        "https://user@example.org",
        "https://Example.org",
        "example.org",
        "",
    ],
)
def test_a_bad_origin_is_a_config_error_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, {"api.cors_origins": [bad]})
    assert "api.cors_origins[0]" in str(e.value)


def test_origins_are_read_as_a_list() -> None:
    cfg = load_config(None, {"api.cors_origins": [ORIGIN, "http://localhost:8888"]})
    assert cfg.cors_origins == (ORIGIN, "http://localhost:8888")
    assert load_config(None).cors_origins == ()


# --- HEAD ----------------------------------------------------------------------------------

GET_ROUTES = [
    "/healthz",
    "/api/v1/measurements?limit=2",
    "/api/v1/measurements?limit=0",
    "/api/v1/export?format=csv",
    "/api/v1/export?format=ooni",
    "/api/v1/flags",
    "/api/v1/collateral",
    "/api/v1/watchlist",
    "/api/v1/whoami",
    "/api/v1/openapi.json",
    "/",
    "/static/app.js",
    "/static/nothing.js",
]
# set per answer, not by the route
VARYING = {"Date", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive"}


@pytest.mark.parametrize("path", GET_ROUTES)
async def test_head_answers_like_get_without_a_body(filled: Collector, path: str) -> None:
    got, got_headers, got_body = await ask(filled, "GET", path)
    head, head_headers, head_body = await ask(filled, "HEAD", path)
    assert head == got and head != 405
    assert head_body == b"" and (got_body != b"" or got == 304)
    same = {k: v for k, v in got_headers.items() if k not in VARYING}
    assert {k: v for k, v in head_headers.items() if k not in VARYING} == same


async def test_head_of_metrics_answers_200(filled: Collector) -> None:
    status, headers, body = await ask(filled, "HEAD", "/metrics")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"].startswith("text/plain")


# --- the export's DNS failure columns ---------------------------------------------------------


def stored(m: rec.Measurement) -> dict[str, Any]:
    return m.to_dict()


def test_dns_failure_is_the_deciding_query_not_a_missing_aaaa() -> None:
    only_ipv4 = records.measurement(
        1,
        dns=[
            rec.DNSResult("192.168.1.1", "A", None, 5.0, "NOERROR", ["104.16.1.1"]),
            rec.DNSResult("192.168.1.1", "AAAA", "dns_no_answer", 5.0, "NOERROR"),
        ],
        verdict=rec.Verdict("ok"),
    )
    row = export.flat(stored(only_ipv4))
    assert row["status"] == "ok"
    assert (row["dns_failure"], row["dns_failure_a"], row["dns_failure_aaaa"]) == (
        None,
        None,
        "dns_no_answer",
    )


def test_dns_failure_names_the_a_query_that_failed() -> None:
    nx = records.measurement(
        2,
        dns=[
            rec.DNSResult("192.168.1.1", "AAAA", "generic_timeout_error", 5.0),
            rec.DNSResult("192.168.1.1", "A", "dns_nxdomain_error", 5.0, "NXDOMAIN"),
        ],
        verdict=rec.Verdict("blocked", "dns", "nxdomain"),
    )
    row = export.flat(stored(nx))
    assert row["dns_failure"] == row["dns_failure_a"] == "dns_nxdomain_error"
    assert row["dns_failure_aaaa"] == "generic_timeout_error"


def test_a_redirect_hops_lookup_is_not_the_targets() -> None:
    hop = records.measurement(
        3,
        dns=[
            rec.DNSResult("192.168.1.1", "A", None, 5.0, "NOERROR", ["104.16.1.1"]),
            rec.DNSResult("192.168.1.1", "A", "dns_nxdomain_error", 5.0, name="cdn.example"),
        ],
        verdict=rec.Verdict("ok"),
    )
    row = export.flat(stored(hop))
    assert (row["dns_failure"], row["dns_failure_a"]) == (None, None)


def test_the_new_columns_come_last_in_csv_and_parquet() -> None:
    # columns are only ever added at the end; the diagnostics' came after these
    i = export.CSV_COLUMNS.index("resolver")
    assert export.CSV_COLUMNS[i : i + 4] == (
        "resolver", "dns_failure_a", "dns_failure_aaaa", "diag_skipped",
    )  # fmt: skip
    assert export.CSV_COLUMNS[-1] == "diag_location_network"
    import pyarrow

    names = export.parquet_schema(pyarrow).names
    assert names[-2:] == ["diag_location_network", "record"]
