"""Live answers of a collector holding records, flags and collateral validate against the
OpenAPI document's schemas (JSON Schema 2020-12, components resolved, formats checked)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest

from collector.judge import Findings, open_store
from tests.collector.harness import (
    ROOT,
    Collector,
    answer_validator,
    batch,
    running,
    schema_validator,
)
from tests.support.flags import ingest, look, shared

SERVICES = ("mycanal", "beinsports", "deezer")


def seed(url: str) -> None:
    """An Orange dns flag closed then reopened, an SFR tls flag, and a Free address blocked
    with every service behind it (collateral)."""
    with open_store(url) as db:
        findings = Findings(db)
        ingest(findings, look("o1", 0), look("o2", 1))
        ingest(findings, look("o1", 30, "ok", None), look("o2", 31, "ok", None))
        ingest(findings, look("o1", 60), look("o2", 61))
        ingest(
            findings, look("s1", 40, method="tls", network="SFR", service="deezer", blockpage="x")
        )
        ingest(findings, *(shared("f1", 70, s, network="Free") for s in SERVICES))
        ingest(findings, *(shared("f2", 71, s, network="Free") for s in SERVICES))


@pytest.fixture
async def filled(db_url: str, asn_file: str) -> AsyncIterator[tuple[Collector, str]]:
    """A collector with stored findings, a watchlist and an ASN database; and a probe's token."""
    seed(db_url)
    watchlist = str(ROOT / "configs" / "watchlist.yaml")
    async with running(db_url, watchlist=watchlist, **{"asn.database": asn_file}) as c:
        _, token = await c.register(asn=3215, network="Orange")
        yield c, token


async def answer(c: Collector, method: str, path: str, **kw: Any) -> tuple[str, Any]:
    async with c.client.request(method, path, **kw) as r:
        assert r.content_type == "application/json"
        return str(r.status), await r.json()


def valid(path: str, method: str, status: str, body: Any) -> Any:
    answer_validator(path, method, status).validate(body)
    return body


async def test_findings_and_records_validate(filled: tuple[Collector, str]) -> None:
    c, token = filled
    sent = batch([900_001, 900_002])  # ids the seeded records do not use
    schema_validator({"$ref": "#/components/schemas/Batch"}).validate(sent)
    status, stored = await answer(
        c, "POST", "/api/v1/measurements", json=sent, headers={"Authorization": f"Bearer {token}"}
    )
    assert valid("/api/v1/measurements", "post", status, stored)["inserted"] == 2
    status, page = await answer(c, "GET", "/api/v1/measurements", params={"limit": "5"})
    assert len(valid("/api/v1/measurements", "get", status, page)["measurements"]) == 5
    assert page["next_cursor"] is not None
    status, flags = await answer(c, "GET", "/api/v1/flags")
    found = valid("/api/v1/flags", "get", status, flags)["flags"]
    assert {f["state"] for f in found} == {"open", "closed"}
    assert any(f["closed_at"] is not None for f in found)
    status, collateral = await answer(c, "GET", "/api/v1/collateral")
    [row] = valid("/api/v1/collateral", "get", status, collateral)["addresses"]
    assert row["services"] == sorted(SERVICES)


JSON = "application/json"


async def test_the_other_answers_validate(filled: tuple[Collector, str]) -> None:
    c, _ = filled
    assert valid("/healthz", "get", *await answer(c, "GET", "/healthz"))["status"] == "ok"
    body = {"asn": 12322, "network": "Free"}
    schema_validator({"$ref": "#/components/schemas/Registration"}).validate(body)
    registered = valid(
        "/api/v1/probes", "post", *await answer(c, "POST", "/api/v1/probes", json=body)
    )
    assert registered["token"]
    watchlist = valid("/api/v1/watchlist", "get", *await answer(c, "GET", "/api/v1/watchlist"))
    assert len(watchlist["services"]) > 10
    whoami = valid("/api/v1/whoami", "get", *await answer(c, "GET", "/api/v1/whoami"))
    assert whoami == {"asn": 64500, "network": "Test ISP"}
    errors = [
        ("/api/v1/flags", "get", "GET", {"params": {"state": "maybe"}}),
        ("/api/v1/measurements", "get", "GET", {"params": {"colour": "blue"}}),
        ("/api/v1/probes", "post", "POST", {"data": b"{", "headers": {"Content-Type": JSON}}),
        (
            "/api/v1/probes",
            "post",
            "POST",
            {"data": b"{", "headers": {"Content-Type": "text/plain"}},
        ),
        ("/api/v1/measurements", "post", "POST", {"json": batch([3])}),
    ]
    for path, method, verb, kw in errors:
        status, error = await answer(c, verb, path, **kw)
        assert status in ("400", "401", "415")
        assert valid(path, method, status, error)["error"]


async def test_an_answer_the_document_does_not_describe_fails(
    filled: tuple[Collector, str],
) -> None:
    """The validation can fail: a key too many, a value out of its enum, a missing key."""
    c, _ = filled
    _, flags = await answer(c, "GET", "/api/v1/flags")
    validator = answer_validator("/api/v1/flags", "get", "200")
    validator.validate(flags)
    for change in (
        lambda f: f.update(colour="red"),
        lambda f: f.update(state="maybe"),
        lambda f: f.pop("evidence"),
        lambda f: f.update(confidence=1.5),
        lambda f: f.update(first_seen="yesterday"),
    ):
        broken = copy.deepcopy(flags)
        change(broken["flags"][0])
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(broken)
    _, page = await answer(c, "GET", "/api/v1/measurements")
    page["measurements"][0]["dns"][0]["rcode"] = 3
    with pytest.raises(jsonschema.ValidationError):
        answer_validator("/api/v1/measurements", "get", "200").validate(page)
