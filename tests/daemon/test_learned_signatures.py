"""The probe's side of learned block signatures: fetched with the watchlist from a real collector
on loopback, kept in the state dir, and applied by `check --no-control` to a real DNS server on
loopback that answers 127.0.0.1: the verdict is then `blocked`, method `dns`, by
`learned:<id>`, where without them it is inconclusive."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from aiohttp import web

from collector.judge import learned as collector_learned
from collector.store import migrate
from probe import learned, record
from probe.client import CollectorClient
from probe.daemon.cycle import WatchlistSource
from tests.collector.harness import running
from tests.support import dns_server, records

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTROLS = ("ctl-one", "ctl-two")
LAB_ISP = 64500  # no packaged signature names this network's answers


@pytest.fixture
def lying() -> Iterator[dns_server.DNSServer]:
    """The line's resolver: 127.0.0.1 for every name."""
    with dns_server.serving_in_thread(default=dns_server.Zone(["127.0.0.1"])) as server:
        yield server


def resolver_of(server: dns_server.DNSServer) -> str:
    return f"127.0.0.1:{server.port}"


def sent(n: int, service: str, resolver: str) -> dict[str, Any]:
    """A record of a positive control: the line's resolver lies, the control resolves."""
    answer = record.DNSResult("x", "A", None, 2.0, rcode="NOERROR", answers=["127.0.0.1"])
    real = dataclasses.replace(answer, answers=["203.0.113.5"])
    probe = dataclasses.replace(records.ORANGE, id=None, asn=LAB_ISP, network="LabISP")
    m = records.measurement(
        n, service=service, domain=f"{service}.example", category="control", probe=probe,
        dns=[dataclasses.replace(answer, resolver=resolver)], tcp=[], tls=[], http=None,
        control=record.Control(dns=[real]),
    )  # fmt: skip
    return m.to_dict()


def watchlist(tmp: pathlib.Path) -> str:
    services = [
        {"id": c, "name": c, "category": "control", "urls": [f"https://{c}.example/"],
         "dns_only": True} for c in CONTROLS
    ]  # fmt: skip
    (tmp / "w.yaml").write_text(yaml.safe_dump({"services": services}))
    return str(tmp / "w.yaml")


def check(state_dir: pathlib.Path, resolver: str, *names: str) -> list[dict[str, Any]]:
    argv = [
        sys.executable, "-m", "probe", "check", "--json", "--no-control", "--quiet",
        "--resolver", resolver, "--timeout", "2", "--asn", str(LAB_ISP), "--network", "LabISP",
        "--state-dir", str(state_dir), *names,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_check_decides_with_a_signature_fetched_with_the_watchlist(
    tmp_path: pathlib.Path, lying: dns_server.DNSServer
) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/collector.db"
    migrate(sqlite_url)
    resolver = resolver_of(lying)
    state = tmp_path / "state"
    state.mkdir()
    (before,) = await asyncio.to_thread(check, state, resolver, "blocked-name.example")
    assert before["dns"][0]["resolver"] == resolver  # the key the signature is learned under
    assert before["verdict"]["status"] == "inconclusive"

    async with running(sqlite_url, watchlist=watchlist(tmp_path)) as c:
        for n0 in (0, 10):
            _, token = await c.register(asn=LAB_ISP, network="LabISP")
            body = {
                "records": [sent(n0 + 1, "ctl-one", resolver), sent(n0 + 2, "ctl-two", resolver)]
            }
            assert (await c.submit(token, body))[0] == 200
        url = str(c.client.make_url("")).rstrip("/")
        async with CollectorClient(base_url=url) as client:
            source = WatchlistSource("collector", state, client, asn=LAB_ISP)
            wl, where = await source.get()
    assert wl is not None and where == "collector"
    kept = json.loads((state / learned.CACHE).read_text())
    sid = collector_learned.signature_id(LAB_ISP, resolver, "address", "127.0.0.1")
    assert kept["asn"] == LAB_ISP
    assert [(s["id"], s["kind"], s["value"]) for s in kept["signatures"]] == [
        (sid, "address", "127.0.0.1")
    ]

    (after,) = await asyncio.to_thread(check, state, resolver, "blocked-name.example")
    v = after["verdict"]
    assert (v["status"], v["method"], v["detail"], v["blockpage"]) == (
        "blocked", "dns", "bogon", f"learned:{sid}",
    )  # fmt: skip


def test_a_signature_applies_to_its_network_and_path_only(tmp_path: pathlib.Path) -> None:
    item = {"id": "ab12", "asn": LAB_ISP, "resolver": "isp", "kind": "address", "value": "10.9.9.9"}
    learned.save(
        tmp_path, [item, {**item, "id": "cd34", "kind": "rcode", "value": "NXDOMAIN"}], LAB_ISP
    )
    fps = learned.load(tmp_path, None)  # undeclared: the network the file was fetched for
    assert [f.name for f in fps.for_path("isp").fingerprints] == ["learned:ab12", "learned:cd34"]
    assert fps.get("learned:cd34").confidence == "likely"  # an rcode never decides alone
    assert len(fps.for_path("google")) == 0
    assert len(learned.load(tmp_path, 3215)) == 0  # another network's
    assert fps.match_dns(["10.9.9.9"], [], None).name == "learned:ab12"


@pytest.mark.parametrize(
    "doc",
    [[], {"signatures": {}}, {"signatures": [{"id": "x!"}]},
     {"signatures": [{"id": "ab", "asn": 1, "resolver": "isp", "kind": "address", "value": "no"}]},
     {"signatures": [{"id": "ab", "asn": 1, "resolver": "isp", "kind": "rcode", "value": "BOGUS"}]},
     {"signatures": [{"id": "ab", "asn": True, "resolver": "isp", "kind": "rcode",
                      "value": "NXDOMAIN"}]}],
)  # fmt: skip
def test_a_malformed_answer_is_refused(doc: Any) -> None:
    with pytest.raises(learned.SignaturesMalformed):
        learned.parse(doc)


async def test_an_older_collector_means_no_signatures(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="surblocage")

    async def watchlist_only(_: web.Request) -> web.Response:
        return web.json_response({"services": []})

    app = web.Application()  # a collector from before the learned signatures
    app.router.add_get("/api/v1/watchlist", watchlist_only)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with CollectorClient(base_url=f"http://127.0.0.1:{port}") as client:
            source = WatchlistSource("collector", tmp_path, client, asn=LAB_ISP)
            for _ in range(3):
                await source.get()
    finally:
        await runner.cleanup()
    assert json.loads((tmp_path / learned.CACHE).read_text()) == {"asn": LAB_ISP, "signatures": []}
    said = [r for r in caplog.records if "learned signatures not refreshed" in r.getMessage()]
    assert len(said) == 1  # once, not every cycle
