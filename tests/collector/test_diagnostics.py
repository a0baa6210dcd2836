"""A record's ``diagnostics`` at the collector: checked at ingest, stored with the record, the
location's network from the ASN database, counted per flag in the API, the page and the exports;
on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import csv
import datetime
import io
import pathlib
from typing import Any

import pytest

from collector import diagnostics, export_flags, flag_diagnostics
from collector.store import migrate
from probe.record import MalformedRecord
from tests.collector.harness import Collector, answer_validator, record, running, schema_validator

DIAGNOSIS: dict[str, Any] = {
    "dns_injection": {
        "result": "on_path",
        "queried": "192.0.2.53",
        "answers": [
            {
                "source": "192.0.2.53",
                "ttl": 58,
                "ip_id": 4321,
                "rcode": "NOERROR",
                "addresses": ["127.0.0.1"],
            }
        ],
    },
    "reset_origin": {
        "result": "path",
        "synack_ttl": 52,
        "rst_ttl": 61,
        "synack_ip_id": 0,
        "rst_ip_id": 12345,
    },
    "location": {
        "result": "found",
        "trigger": "dns",
        "hop": 3,
        "address": "127.0.0.3",
        "asn": 666,  # a probe's claim: the collector's ASN database decides
        "network": "Claimed",
        "evidence": "hop 3 answers the blocked name, not the control name",
    },
    "packets": 84,
    "malformed": 0,
    "duration_ms": 2300,
}


def recent(minutes: int = 5) -> str:
    return (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=minutes)).isoformat()


def diagnosed(n: int, value: Any = DIAGNOSIS, minutes: int = 5) -> dict[str, Any]:
    return {**record(n, started_at=recent(minutes)), "diagnostics": value}


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """DIAGNOSIS with the value at ``path`` replaced (``...``: the key removed)."""
    out = copy.deepcopy(DIAGNOSIS)
    inner: Any = out
    for key in path[:-1]:
        inner = inner[key]
    if value is ...:
        del inner[path[-1]]
    else:
        inner[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"skipped": "no_raw_socket"},
        {"skipped": "budget"},
        DIAGNOSIS,
        changed(("dns_injection",), None),
        changed(("location",), None),
        changed(("location", "address"), None),
        changed(("reset_origin", "rst_ttl"), None),
    ],
)
def test_the_documented_shapes_pass(value: Any) -> None:
    diagnostics.check(value)
    assert diagnostics.is_valid(value)


MALFORMED = [
    ([], "diagnostics: expected an object or null"),
    ({"skipped": "bored"}, "diagnostics.skipped:"),
    ({"skipped": "budget", "packets": 3}, "diagnostics.packets: unknown key"),
    (changed(("extra",), 1), "diagnostics.extra: unknown key"),
    (changed(("packets",), ...), "diagnostics.packets: missing"),
    (changed(("packets",), -1), "diagnostics.packets: -1 is out of range"),
    (changed(("packets",), True), "diagnostics.packets: expected an integer"),
    (changed(("duration_ms",), 1.5), "diagnostics.duration_ms: expected an integer"),
    (changed(("dns_injection", "result"), "forged"), "diagnostics.dns_injection.result:"),
    (changed(("dns_injection", "queried"), "resolver"), "diagnostics.dns_injection.queried:"),
    (changed(("dns_injection", "answers"), [DIAGNOSIS["dns_injection"]["answers"][0]] * 9),
     "diagnostics.dns_injection.answers: more than 8"),
    (changed(("dns_injection", "answers", 0, "ttl"), 256),
     "diagnostics.dns_injection.answers[0].ttl: 256 is out of range"),
    (changed(("dns_injection", "answers", 0, "ip_id"), 65536),
     "diagnostics.dns_injection.answers[0].ip_id:"),
    (changed(("dns_injection", "answers", 0, "addresses"), ["::1%eth0"]),
     "diagnostics.dns_injection.answers[0].addresses[0]:"),
    (changed(("dns_injection", "answers", 0, "rcode"), "X" * 17),
     "diagnostics.dns_injection.answers[0].rcode: longer than 16"),
    (changed(("reset_origin", "result"), "box"), "diagnostics.reset_origin.result:"),
    (changed(("reset_origin", "rst_ip_id"), "7"), "diagnostics.reset_origin.rst_ip_id:"),
    (changed(("location", "hop"), 0), "diagnostics.location.hop: 0 is out of range (1 to 64)"),
    (changed(("location", "hop"), 65), "diagnostics.location.hop: 65 is out of range"),
    (changed(("location", "trigger"), "quic"), "diagnostics.location.trigger:"),
    (changed(("location", "address"), "router"), "diagnostics.location.address:"),
    (changed(("location", "asn"), 2**32), "diagnostics.location.asn:"),
    (changed(("location", "evidence"), "x" * 201), "diagnostics.location.evidence: longer"),
    (changed(("location", "evidence"), "a\x00b"), "diagnostics.location.evidence: contains"),
    (changed(("location", "network"), 7), "diagnostics.location.network: expected a string"),
    (changed(("location",), "hop 3"), "diagnostics.location: expected an object"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "message"), MALFORMED)
def test_anything_else_is_malformed_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(MalformedRecord) as e:
        diagnostics.check(value)
    assert str(e.value).startswith(message), str(e.value)
    assert not diagnostics.is_valid(value)


async def test_a_malformed_diagnosis_refuses_the_batch_with_400(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        _, token = await c.register()
        bad = changed(("location", "hop"), 0)
        status, answer = await c.submit(token, {"records": [diagnosed(1), diagnosed(2, bad)]})
        assert status == 400
        assert answer["error"].startswith("records[1].diagnostics.location.hop: 0 is out")
        assert await c.query_all() == []  # the batch is refused whole


def located(c: Collector) -> list[Any]:
    return [m.get("diagnostics") for m in c.store.read(_docs)]


def _docs(conn: Any) -> list[Any]:
    from collector.store.schema import measurements

    return [r.doc for r in conn.execute(measurements.select().order_by(measurements.c.id))]


async def test_stored_with_the_record_its_location_named_by_the_asn_database(
    db_url: str, asn_file: str
) -> None:
    async with running(db_url, **{"asn.database": asn_file}) as c:
        _, token = await c.register()
        elsewhere = changed(("location", "address"), "192.0.2.1")  # not in the database
        skipped = {"skipped": "no_raw_socket"}
        body = {"records": [diagnosed(1), diagnosed(2, elsewhere), diagnosed(3, skipped)]}
        assert (await c.submit(token, body))[0] == 200
        by_id = {m["id"]: m for m in await c.query_all()}
    first = by_id[record(1)["id"]]["diagnostics"]
    assert first["location"] | {"evidence": None} == {
        **DIAGNOSIS["location"], "asn": 64500, "network": "Test ISP", "evidence": None,
    }  # fmt: skip
    assert first["dns_injection"] == DIAGNOSIS["dns_injection"]
    assert by_id[record(2)["id"]]["diagnostics"]["location"]["asn"] is None
    assert by_id[record(2)["id"]]["diagnostics"]["location"]["network"] is None
    assert by_id[record(3)["id"]]["diagnostics"] == skipped


async def test_without_an_asn_database_the_probes_claim_is_dropped(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        _, token = await c.register()
        assert (await c.submit(token, {"records": [diagnosed(1)]}))[0] == 200
        [m] = await c.query_all()
    assert (m["diagnostics"]["location"]["asn"], m["diagnostics"]["location"]["network"]) == (
        None,
        None,
    )


def dx(probe: str, minutes: int, value: dict[str, Any]) -> flag_diagnostics.Diagnosed:
    at = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.UTC)
    return flag_diagnostics.Diagnosed(probe, at + datetime.timedelta(minutes=minutes), value)


def test_the_aggregate_counts_probes_by_their_latest_diagnosis() -> None:
    reset_server = changed(("reset_origin", "result"), "server")
    found = [
        dx("a", 1, reset_server),
        dx("a", 2, DIAGNOSIS),  # a's latest: path
        dx("b", 1, DIAGNOSIS),
        dx("c", 1, {"skipped": "budget"}),
        dx("c", 2, changed(("dns_injection", "result"), "race")),
        dx("d", 1, {"skipped": "no_raw_socket"}),  # never diagnosed: skipped
        dx("e", 1, {"skipped": "interval"}),  # diagnosed before the evidence: in neither count
    ]
    got = flag_diagnostics.aggregate(found)
    assert got["probes"] == 3 and got["skipped"] == 1
    assert got["dns_injection"] == {"on_path": 2, "race": 1, "none": 0}
    assert got["reset_origin"] == {"server": 0, "path": 3, "unknown": 0}
    assert got["location"] == {
        "hop": 3, "address": "127.0.0.3", "asn": 666, "network": "Claimed", "probes": 3,
    }  # fmt: skip


def test_a_location_needs_two_probes_and_a_majority() -> None:
    other = changed(("location", "address"), "192.0.2.9")
    not_found = changed(("location",), {**DIAGNOSIS["location"], "result": "not_found"})
    assert flag_diagnostics.aggregate([dx("a", 1, DIAGNOSIS)])["location"] is None  # one probe
    two_ways = [dx("a", 1, DIAGNOSIS), dx("b", 1, DIAGNOSIS), dx("c", 1, other), dx("d", 1, other)]
    assert flag_diagnostics.aggregate(two_ways)["location"] is None  # a tie is no majority
    more = [*two_ways, dx("e", 1, DIAGNOSIS)]
    assert flag_diagnostics.aggregate(more)["location"]["probes"] == 3  # type: ignore[index]
    # probes that found nothing do not vote
    quiet = [dx("a", 1, DIAGNOSIS), dx("b", 1, DIAGNOSIS), dx("c", 1, not_found)]
    assert flag_diagnostics.aggregate(quiet)["location"]["address"] == "127.0.0.3"  # type: ignore[index]
    # one probe sending many records is still one vote
    liar = [dx("a", 1, DIAGNOSIS), dx("a", 2, DIAGNOSIS), dx("a", 3, DIAGNOSIS)]
    assert flag_diagnostics.aggregate(liar)["location"] is None


def test_no_diagnostics_is_an_empty_aggregate() -> None:
    assert flag_diagnostics.aggregate([]) == {
        "probes": 0,
        "skipped": 0,
        "dns_injection": {"on_path": 0, "race": 0, "none": 0},
        "reset_origin": {"server": 0, "path": 0, "unknown": 0},
        "location": None,
    }


async def _three_probes_diagnose(c: Collector) -> None:
    """Three probes of their own source networks submit blocked records: two diagnosed alike,
    one skipped; an earlier record without diagnostics."""
    values = [DIAGNOSIS, changed(("dns_injection", "result"), "none"), {"skipped": "no_raw_socket"}]
    for i, value in enumerate(values):
        _, token = await c.register(asn=3215, network="Orange")
        body = {"records": [record(10 * i, started_at=recent(9)), diagnosed(10 * i + 1, value)]}
        assert (await c.submit(token, body))[0] == 200, body


async def test_the_flags_api_counts_what_diagnostics_found(db_url: str, asn_file: str) -> None:
    async with running(db_url, **{"asn.database": asn_file}) as c:
        await _three_probes_diagnose(c)
        async with c.client.get("/api/v1/flags") as r:
            assert r.status == 200
            answer = await r.json()
    answer_validator("/api/v1/flags", "get", "200").validate(answer)
    [flag] = answer["flags"]
    assert flag["diagnostics"] == {
        "probes": 2,
        "skipped": 1,
        "dns_injection": {"on_path": 1, "race": 0, "none": 1},
        "reset_origin": {"server": 0, "path": 2, "unknown": 0},
        "location": {
            "hop": 3, "address": "127.0.0.3", "asn": 64500, "network": "Test ISP", "probes": 2,
        },
    }  # fmt: skip


async def test_the_flag_page_says_it_in_plain_words(sqlite_url: str, asn_file: str) -> None:
    async with running(sqlite_url, **{"asn.database": asn_file}) as c:
        await _three_probes_diagnose(c)
        async with c.client.get("/api/v1/flags") as r:
            [flag] = (await r.json())["flags"]
        pages = {}
        for lang in ("en", "fr"):
            async with c.client.get(f"/flags/{flag['id']}", params={"lang": lang}) as r:
                assert r.status == 200
                pages[lang] = await r.text()
    en, fr = pages["en"], pages["fr"]
    assert "Answer forged on the path, seen by 1 probe." in en
    assert "No answer forged on the path (the resolver itself lies), seen by 1 probe." in en
    assert "Reset sent by a box on the path, seen by 2 probes." in en
    assert "Interference at hop 3 (AS64500 Test ISP, 127.0.0.3), located there by 2 probes." in en
    assert "1 probe could not diagnose" in en
    assert "Réponse forgée sur le chemin, vue par 1 sonde." in fr
    assert "Réinitialisation envoyée par un boîtier sur le chemin, vue par 2 sondes." in fr
    assert "Interférence au saut 3 (AS64500 Test ISP, 127.0.0.3), localisée là par 2 sondes." in fr


async def test_a_flag_nobody_diagnosed_says_so(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        _, token = await c.register(asn=3215, network="Orange")
        assert (await c.submit(token, {"records": [record(1, started_at=recent())]}))[0] == 200
        async with c.client.get("/api/v1/flags") as r:
            [flag] = (await r.json())["flags"]
        assert flag["diagnostics"]["probes"] == 0 and flag["diagnostics"]["location"] is None
        async with c.client.get(f"/flags/{flag['id']}", params={"lang": "en"}) as r:
            assert "No probe diagnosed this block." in await r.text()


async def test_the_exports_end_with_the_diagnostics_columns(
    tmp_path: pathlib.Path, asn_file: str
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    async with running(url, **{"asn.database": asn_file}) as c:
        await _three_probes_diagnose(c)
        async with c.client.get("/api/v1/export", params={"format": "csv"}) as r:
            assert r.status == 200
            rows = list(csv.DictReader(io.StringIO(await r.text())))
        async with c.client.get("/api/v1/flags") as r:
            flags = (await r.json())["flags"]
    header = list(rows[0])
    assert header[-7:] == [
        "diag_skipped", "diag_dns_injection", "diag_reset_origin", "diag_location_hop",
        "diag_location_address", "diag_location_asn", "diag_location_network",
    ]  # fmt: skip
    by_id = {row["id"]: row for row in rows}
    first = by_id[record(1)["id"]]
    assert (first["diag_dns_injection"], first["diag_reset_origin"]) == ("on_path", "path")
    assert (first["diag_location_hop"], first["diag_location_asn"]) == ("3", "64500")
    assert by_id[record(21)["id"]]["diag_skipped"] == "no_raw_socket"
    assert by_id[record(0)["id"]]["diag_skipped"] == ""  # not diagnosed: empty
    flat = {c.name: c.read(flags[0]) for c in export_flags.COLUMNS}
    assert export_flags.CSV_COLUMNS[-13] == "diag_probes"
    assert (flat["diag_probes"], flat["diag_skipped"], flat["diag_dns_injection_on_path"]) == (
        2,
        1,
        1,
    )
    assert (flat["diag_location_address"], flat["diag_location_probes"]) == ("127.0.0.3", 2)


def test_the_openapi_document_gives_the_shapes() -> None:
    def valid(name: str, value: Any) -> bool:
        return schema_validator({"$ref": f"#/components/schemas/{name}"}).is_valid(value)

    assert valid("Diagnosis", DIAGNOSIS)
    assert valid("DiagnosisSkipped", {"skipped": "scapy_missing"})
    assert not valid("Diagnosis", changed(("location", "hop"), 0))
    assert not valid("Diagnosis", changed(("extra",), 1))
    record_schema = schema_validator({"$ref": "#/components/schemas/StoredMeasurement"}).schema
    stored = record_schema["components"]["schemas"]["StoredMeasurement"]["properties"]
    assert "diagnostics" in stored


HOSTILE_OLD = [
    "on_path",
    [DIAGNOSIS],
    {"skipped": ["budget"]},
    changed(("dns_injection", "result"), {"x": 1}),
    changed(("location", "hop"), "3"),
    changed(("location", "hop"), True),
    changed(("location", "address"), 3),
    changed(("location",), "hop 3"),
    {"dns_injection": {"result": "race"}},  # a partial object: counted as far as it goes
]


@pytest.mark.parametrize("value", HOSTILE_OLD)
def test_a_document_stored_before_the_check_never_breaks_the_flags(db_url: str, value: Any) -> None:
    """A collector before this one stored unknown keys as sent: what the aggregate cannot read
    is left out, never a 500."""
    from collector.judge import Findings, open_store
    from tests.support import records

    store = open_store(db_url)
    try:
        rows = []
        for n, diag in enumerate([value, DIAGNOSIS, DIAGNOSIS]):
            m = records.measurement(n, started_at=recent(5 + n))
            doc = {**m.to_dict(), "diagnostics": diag}
            rows.append(
                records.MeasurementRow.from_record(
                    m, probe_id=f"p{n}", asn=3215, network="Orange",
                    received_at=datetime.datetime.now(datetime.UTC), probe_verdict=None,
                    submitted=doc,
                )
            )  # fmt: skip
        store.insert_batch(rows)
        findings = Findings(store)
        findings.judge_pending(datetime.datetime.now(datetime.UTC))
        [flag] = store.read(flag_diagnostics.attach, findings.query_flags())
    finally:
        store.close()
    got = flag["diagnostics"]
    partial = value == HOSTILE_OLD[-1]
    assert got["probes"] == (3 if partial else 2)
    assert got["location"]["probes"] == 2
    assert got["dns_injection"]["race"] == (1 if partial else 0)
