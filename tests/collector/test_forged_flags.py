"""Forged evidence does not open or keep a flag: dates out of range, puppets, revoked probes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from collector import cli
from collector.control import ControlVantage
from probe import record as rec
from probe.flow import FlowOptions
from tests.collector.harness import (
    ROOT,
    Collector,
    answer_validator,
    batch,
    count,
    record,
    running,
)

UTC = datetime.UTC
VALID_FLAGS = answer_validator("/api/v1/flags", "get", "200")
DOMAIN = "www.canalplus.com"
WATCHLIST = str(ROOT / "configs" / "watchlist.yaml")


def nxdomain(n: int, seconds: int) -> dict[str, Any]:
    """A batch of one unfingerprinted DNS block (NXDOMAIN where the control resolves), dated
    ``seconds`` after ten minutes ago (the judge weighs the last two days)."""
    when = datetime.datetime.now(UTC) - datetime.timedelta(minutes=10, seconds=-seconds)
    answer = rec.DNSResult("9.9.9.9", "A", None, 5, "NOERROR", ["104.16.1.1"], name=DOMAIN)
    failed = rec.DNSResult("192.168.1.1", "A", "dns_nxdomain_error", 3, "NXDOMAIN", name=DOMAIN)
    fields = {"dns": [failed], "tcp": [], "tls": [], "http": None}
    return {"records": [record(n, started_at=when, control=rec.Control(dns=[answer]), **fields)]}


WEEK = {"ingest.max_record_age_seconds": 7 * 86400}


async def test_a_record_from_the_future_is_refused_naming_it(sqlite_url: str) -> None:
    async with running(sqlite_url, **WEEK) as c:
        _, token = await c.register()
        soon = datetime.datetime.now(UTC) + datetime.timedelta(minutes=2)
        later = datetime.datetime(2099, 1, 1, tzinfo=UTC)
        body = {
            "records": batch([1], started_at=soon)["records"]
            + batch([2], started_at=later)["records"]
        }
        status, answer = await c.submit(token, body)
        assert status == 400
        assert answer["error"].startswith("records[1].started_at: ")
        assert "future" in answer["error"]
        assert count(c.store) == 0


async def test_a_record_older_than_the_retention_window_is_refused(sqlite_url: str) -> None:
    async with running(sqlite_url, **WEEK) as c:
        _, token = await c.register()
        old = datetime.datetime.now(UTC) - datetime.timedelta(days=8)
        status, answer = await c.submit(token, batch([1], started_at=old))
        assert status == 400
        assert answer["error"].startswith("records[0].started_at: ")
        assert "older than" in answer["error"]
        fresh = datetime.datetime.now(UTC) - datetime.timedelta(days=6)
        status, answer = await c.submit(token, batch([2], started_at=fresh))
        assert status == 200, answer
        assert count(c.store) == 1


async def flags_of(c: Collector) -> list[dict[str, Any]]:
    async with c.client.get("/api/v1/flags") as r:
        assert r.status == 200, await r.text()
        answer = await r.json()
    VALID_FLAGS.validate(answer)
    flags: list[dict[str, Any]] = answer["flags"]
    return flags


async def test_probes_registered_from_one_subnet_are_one_source(sqlite_url: str) -> None:
    async with running(sqlite_url) as c:
        tokens = [(await c.register(own_network=False))[1] for _ in range(3)]
        for i, token in enumerate(tokens):  # one look each, in one cycle
            status, _ = await c.submit(token, nxdomain(i, i))
            assert status == 200
        assert await flags_of(c) == []
        # the address is never stored; the source is a keyed hash of its /24
        found = {p.source for p in c.store.list_probes()}
        assert len(found) == 1
        [source] = found
        assert source is not None and source.startswith("net:") and "127.0.0" not in source


async def test_a_revoked_probe_is_refused_and_its_flag_closes(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(sqlite_url) as c:
        ids = {}
        for name, n in (("a", 1), ("b", 2)):
            probe_id, token = await c.register()  # two probes, two source networks
            ids[name] = (probe_id, token)
            assert (await c.submit(token, nxdomain(n, n)))[0] == 200
        [flag] = await flags_of(c)
        assert (flag["state"], flag["networks"], len(flag["probes"])) == ("open", 2, 2)
        assert cli.main(["probes", "revoke", ids["b"][0], "--db", sqlite_url]) == 0
        assert f"probe {ids['b'][0]} revoked; 1 flag pair(s)" in capsys.readouterr().out
        status, answer = await c.submit(ids["b"][1], nxdomain(3, 3))
        assert status == 401 and "revoked" in answer["error"]
        [flag] = await flags_of(c)
        assert flag["state"] == "closed"
    assert cli.main(["probes", "revoke", "p-nobody", "--db", sqlite_url]) == 1


class Vantage:
    """The control's step composer faked at its seam: the service answers, or not at all."""

    addresses_ignored = 0

    def __init__(self, reached: bool) -> None:
        self.reached = reached
        self.asked: list[str] = []

    async def measure(self, target: Any, probe: Any, **_: Any) -> rec.Measurement:
        self.asked.append(target.url)
        failure = None if self.reached else "generic_timeout_error"
        http = rec.HTTPResult(target.url, failure, 1.0, status=200 if self.reached else None)
        return rec.Measurement(rec.new_id(), probe, target, "2026-03-01T20:00:00Z", 1.0, http=http)


async def two_sources_blocked(c: Collector) -> None:
    """Two probes of two source networks submit a DNS block of mycanal."""
    for n in (1, 2):
        _, token = await c.register()
        assert (await c.submit(token, nxdomain(n, n)))[0] == 200


@pytest.mark.parametrize("reached", [True, False])
async def test_a_flag_opens_only_if_the_collectors_own_control_reaches_the_service(
    sqlite_url: str, reached: bool
) -> None:
    flow = Vantage(reached)
    control = ControlVantage(FlowOptions(resolver="127.0.0.1"), flow=flow)  # type: ignore[arg-type]
    async with running(sqlite_url, control=control, watchlist=WATCHLIST) as c:
        await two_sources_blocked(c)
        found = await flags_of(c)
        assert flow.asked  # the collector measured from its own vantage
        if reached:
            assert [(f["state"], f["control"]) for f in found] == [("open", "collector")]
        else:  # the probes' controls said up, the collector's says down: no flag
            assert found == []


async def test_without_a_control_vantage_a_flag_rests_on_the_probes_control(
    sqlite_url: str,
) -> None:
    async with running(sqlite_url, watchlist=WATCHLIST) as c:
        await two_sources_blocked(c)
        assert [(f["state"], f["control"]) for f in await flags_of(c)] == [("open", "probe")]
