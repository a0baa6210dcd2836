"""POST /api/v1/control on a real collector app, against real DNS and web servers on loopback.

The control's network, as these tests see it, is 10.99.0.0/16, given as an allowed network: the
step map dials those addresses on 127.0.0.1, where the web servers listen, and writes them back
into the results. Loopback itself is never dialled, whatever is allowed (probe/addresses.py),
hence this translation at the step map seam; every other address is dialled as it is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import ipaddress
import json
import pathlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import dns.message
import pytest

from collector.config import load_config
from collector.control import ControlVantage, Permits, control_options
from probe.flow import DEFAULT_STEPS, Steps
from probe.steps import connection, tls
from tests.collector.harness import Collector, running
from tests.support import dns_server as servers

NET = ipaddress.ip_network("10.99.0.0/16")
MANY = [str(NET[i]) for i in range(256, 1256)]  # 1,000 A records: 10.99.1.0 onwards
ONE = ["10.99.0.1"]
BUSY = [f"t{i}.control.test" for i in range(20)]  # 20 names of 8 addresses each
SECRET = "SECRET-BODY-TEXT"
PAGE = f"<html><head><title>Accueil du service</title></head><body>{SECRET}{'x' * 3000}</body>"
BIG_BYTES = 2 * 1024 * 1024


def _loopback(ip: str) -> str:
    return "127.0.0.1" if ":" not in ip and ipaddress.ip_address(ip) in NET else ip


async def _connection(spec: connection.ConnectionSpec) -> connection.ConnectionResult:
    """The real connection step, dialling 10.99.0.0/16 on loopback; results say what was asked."""
    real = await connection.measure(
        dataclasses.replace(spec, ips=tuple(_loopback(ip) for ip in spec.ips))
    )
    tcp = tuple(dataclasses.replace(t, ip=ip) for t, ip in zip(real.tcp, spec.ips, strict=True))
    up = [t.ip for t in tcp if t.failure is None]
    tls_results = tuple(dataclasses.replace(t, ip=ip) for t, ip in zip(real.tls, up, strict=False))
    http = real.http
    if http is not None and http.ip is not None and up:
        http = dataclasses.replace(http, ip=up[0])
    return connection.ConnectionResult(tcp=tcp, tls=tls_results, http=http)


async def _tls(spec: tls.TLSSpec) -> Any:
    result = await tls.measure(dataclasses.replace(spec, ip=_loopback(spec.ip)))
    return dataclasses.replace(result, ip=spec.ip)


LOOPBACK_STEPS: Steps = dataclasses.replace(DEFAULT_STEPS, connection=_connection, tls=_tls)


@dataclass
class Web:
    """A web server that counts what it accepts, and the GETs it is answering at once."""

    accepted: int = 0
    paths: list[str] = field(default_factory=list)
    answering: int = 0
    peak_answering: int = 0
    delay_seconds: float = 0.0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # connected only: the control used another address of the name
            return
        path = head.split(b" ", 2)[1].decode()
        self.paths.append(path)
        self.answering += 1
        self.peak_answering = max(self.peak_answering, self.answering)
        await asyncio.sleep(self.delay_seconds)
        # counted out before the answer leaves: the client cannot go on before this
        self.answering -= 1
        try:
            writer.write(self.answer(path))
            await writer.drain()
        except ConnectionError:
            pass  # the control read what it wanted and left
        finally:
            writer.close()

    def answer(self, path: str) -> bytes:
        parts = path.strip("/").split("/")
        if parts[0] == "hop" and int(parts[2]) < int(parts[1]):
            return _response(302, "", [f"Location: /hop/{parts[1]}/{int(parts[2]) + 1}"])
        if parts[0] == "away":
            return _response(302, "", [f"Location: http://page.control.test:{parts[1]}/page"])
        if parts[0] == "big":
            return _response(200, "y" * BIG_BYTES, [])
        headers = ["Set-Cookie: session=hunter2", "X-Secret: hunter2", "Server: loopback"]
        return _response(200, PAGE, headers)


def _response(status: int, body: str, headers: list[str]) -> bytes:
    head = [f"HTTP/1.1 {status} X", *headers, f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


@dataclass
class Stage:
    collector: Collector
    dns: servers.DNSServer
    web: Web
    other: Web  # a second web server, on a port no watchlist URL names
    watchlist: str
    token: str = ""  # a registered probe's: the control serves probes only

    def url(self, name: str, path: str = "/page") -> str:
        return _url(self.web, name, path)

    async def ask(self, *targets: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        body = {"targets": list(targets)}
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        async with self.collector.client.post("/api/v1/control", json=body, headers=headers) as r:
            return r.status, json.loads(await r.read())

    async def control(self, url: str, addresses: list[str] | None = None) -> dict[str, Any]:
        status, answer = await self.ask({"url": url, "addresses": addresses or []})
        assert status == 200, answer
        [entry] = answer["controls"]
        assert entry["url"] == url
        control: dict[str, Any] = entry["control"]
        return control

    def vantage(self, **limits: int) -> ControlVantage:
        """A control vantage through the stage's resolver, on the loopback step map."""
        overrides = {
            "control.resolver": f"127.0.0.1:{self.dns.port}",
            "network.allow_networks": [str(NET)],
        }
        return ControlVantage(
            control_options(load_config(None, overrides)), steps=LOOPBACK_STEPS, **limits
        )


def _whole_over_tcp(
    reply: Callable[..., list[dns.message.Message]], query: dns.message.Message, transport: str
) -> list[dns.message.Message]:
    """Let a reply over TCP be as large as TCP allows, not the query's UDP payload size."""
    replies = reply(query, transport)
    if transport == "tcp":
        for r in replies:
            r.request_payload = 65535
    return replies


def _url(web: Web, name: str, path: str = "/page") -> str:
    return f"http://{name}:{web.port}{path}"


async def _serve(web: Web) -> asyncio.Server:
    server = await asyncio.start_server(web.handle, "127.0.0.1", 0)
    web.port = int(server.sockets[0].getsockname()[1])
    return server


def _write_watchlist(path: pathlib.Path, web: Web, other: Web, names: list[str]) -> str:
    """Every URL the tests ask for, on the web server's port (not 80 or 443)."""
    urls = [_url(web, n) for n in names] + [_url(web, "page.control.test", "/big")]
    urls += [_url(web, "page.control.test", f"/hop/{k}/0") for k in (10, 100)]
    urls += [_url(web, "page.control.test", f"/away/{other.port}")]
    service = {"id": "control-tests", "name": "c", "category": "general", "urls": urls}
    path.write_text(json.dumps({"services": [service]}))
    return str(path)


@pytest.fixture
async def stage(sqlite_url: str, tmp_path: pathlib.Path) -> AsyncIterator[Stage]:
    dns, stop_dns = await servers.start("127.0.0.1")
    web, other = Web(), Web()
    web_server, other_server = await _serve(web), await _serve(other)
    zones = {"many.control.test": MANY, "page.control.test": ONE, "empty.control.test": []}
    zones |= {name: [str(NET[512 + 8 * i + j]) for j in range(8)] for i, name in enumerate(BUSY)}
    dns.zones = {name: servers.Zone(addresses=list(a)) for name, a in zones.items()}
    dns.zones["many.control.test"].truncate = "empty"  # 1,000 records: over TCP (RFC 7766)
    dns.reply = functools.partial(_whole_over_tcp, dns.reply)  # type: ignore[method-assign]
    watchlist = _write_watchlist(tmp_path / "watchlist.json", web, other, list(zones))
    try:
        first = Stage(None, dns, web, other, watchlist)  # type: ignore[arg-type]
        async with running(sqlite_url, control=first.vantage(), watchlist=watchlist) as c:
            _, token = await c.register()
            yield dataclasses.replace(first, collector=c, token=token)
    finally:
        for server in (web_server, other_server):
            server.close()
            await server.wait_closed()
        await stop_dns()


async def test_a_name_with_a_thousand_addresses_is_dialled_eight_times(stage: Stage) -> None:
    c = await stage.control(stage.url("many.control.test"))
    assert stage.web.accepted == 8  # the first 8 of the family, in answer order
    [a] = [r for r in c["dns"] if r["qtype"] == "A"]
    assert sorted(a["answers"]) == sorted(MANY)  # recorded whole, in the order they came
    assert [t["ip"] for t in c["tcp"]] == a["answers"][:8]
    assert c["http"]["status"] == 200
    async with stage.collector.client.get("/metrics") as r:
        metrics = await r.text()
    assert "surblocage_control_addresses_ignored_total 992.0" in metrics


async def test_the_answer_carries_no_body_and_no_raw_headers(stage: Stage) -> None:
    status, answer = await stage.ask({"url": stage.url("page.control.test"), "addresses": []})
    assert status == 200
    http = answer["controls"][0]["control"]["http"]
    body = PAGE.encode()
    assert http["status"] == 200
    assert http["title"] == "Accueil du service"
    assert (http["body_length"], http["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    assert http["body_head"] is None
    assert http["headers"] == {}
    raw = json.dumps(answer)
    for leak in (SECRET, "hunter2", "loopback"):
        assert leak not in raw


async def test_the_body_read_is_capped(stage: Stage) -> None:
    c = await stage.control(stage.url("page.control.test", "/big"))
    assert c["http"]["body_length"] == 512 * 1024
    assert c["http"]["body_truncated"] is True


@pytest.mark.parametrize(
    "address", ["::127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::7f00:1", "::ffff:127.0.0.1",
                "64:ff9b:1::7f00:1", "2002:7f00:1::1", "::ffff:10.99.0.1", "64:ff9b::a63:1"],
)  # fmt: skip
async def test_ipv6_forms_of_loopback_and_private_addresses_are_never_dialled(
    stage: Stage, address: str
) -> None:
    c = await stage.control(stage.url("empty.control.test"), [address])
    assert c["tcp"] == []
    assert stage.web.accepted == 0


@pytest.mark.parametrize(
    "host", ["[::127.0.0.1]", "[64:ff9b::7f00:1]", "[::ffff:127.0.0.1]", "127.0.0.1", "10.1.2.3"]
)
async def test_a_url_naming_a_non_public_address_is_refused(stage: Stage, host: str) -> None:
    status, answer = await stage.ask({"url": f"http://{host}/", "addresses": []})
    assert status == 400
    assert answer["error"].startswith("targets[0].url: ")
    assert stage.web.accepted == 0


async def test_redirects_followed_exactly_ten_times(stage: Stage) -> None:
    c = await stage.control(stage.url("page.control.test", "/hop/100/0"))
    assert stage.web.paths == [f"/hop/100/{n}" for n in range(11)]  # the first GET and ten more
    assert len(c["http"]["redirects"]) == 0  # the chain is not echoed (see the next test)
    assert c["http"]["failure"] == "unknown_failure: stopped after too many redirects"
    assert c["http"]["status"] == 302


async def test_ten_redirects_then_a_page_are_followed_to_the_page(stage: Stage) -> None:
    c = await stage.control(stage.url("page.control.test", "/hop/10/0"))
    assert stage.web.paths == [f"/hop/10/{n}" for n in range(11)]
    assert (c["http"]["status"], c["http"]["failure"]) == (200, None)
    assert c["http"]["url"] == stage.url("page.control.test", "/hop/10/10")


async def test_a_redirect_to_another_port_is_not_followed(stage: Stage) -> None:
    c = await stage.control(stage.url("page.control.test", f"/away/{stage.other.port}"))
    assert c["http"]["failure"] == "unknown_failure: redirect to a port not measured"
    assert stage.other.accepted == 0


async def test_only_ports_80_and_443_or_a_watchlist_urls_own(stage: Stage) -> None:
    status, answer = await stage.ask({"url": f"http://page.control.test:{stage.other.port}/"})
    assert status == 400
    assert answer["error"] == (
        f"targets[0].url: port {stage.other.port} is not measured "
        "(only 80 and 443, or a watchlist URL's own port)"
    )
    assert stage.other.accepted == 0
    status, _ = await stage.ask({"url": stage.url("page.control.test")})
    assert status == 200


async def test_targets_per_request_are_capped(stage: Stage) -> None:
    targets = [{"url": stage.url(name)} for name in BUSY] + [
        {"url": stage.url("many.control.test")}
    ]
    status, answer = await stage.ask(*targets)
    assert (status, answer) == (400, {"error": "targets: give between 1 and 20 targets"})
    assert stage.web.accepted == 0


async def test_connections_in_flight_are_capped_per_request(stage: Stage) -> None:
    stage.web.delay_seconds = 0.2
    status, _ = await stage.ask(*({"url": stage.url(name)} for name in BUSY))
    assert status == 200
    assert stage.web.accepted == 20 * 8
    # 32 connections a request at once, 8 for each name: 4 names measured at a time
    assert stage.web.peak_answering == 4


async def test_connections_in_flight_are_capped_in_the_whole_collector(
    stage: Stage, sqlite_url: str
) -> None:
    vantage = stage.vantage(connections_in_flight=16)
    stage.web.delay_seconds = 0.2
    async with running(sqlite_url, control=vantage, watchlist=stage.watchlist) as collector:
        both = dataclasses.replace(stage, collector=collector)
        answers = await asyncio.gather(
            both.ask(*({"url": stage.url(name)} for name in BUSY[:10])),
            both.ask(*({"url": stage.url(name)} for name in BUSY[10:])),
        )
    assert [status for status, _ in answers] == [200, 200]
    assert stage.web.accepted == 20 * 8
    # 16 connections at once in the collector, 8 for each name: 2 names at a time in all
    assert stage.web.peak_answering == 2


async def test_permits_are_served_in_turn_and_a_cancelled_wait_takes_none() -> None:
    budget = Permits(4)
    order: list[str] = []
    release = asyncio.Event()

    async def take(name: str, n: int) -> None:
        async with budget.hold(n):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(take("first", 3))
    await asyncio.sleep(0)
    big = asyncio.create_task(take("big", 4))
    gone = asyncio.create_task(take("gone", 1))
    small = asyncio.create_task(take("small", 1))
    await asyncio.sleep(0.01)
    assert order == ["first"]  # one permit is free, but "big" asked first: nobody overtakes
    gone.cancel()
    release.set()
    await asyncio.gather(first, big, small, gone, return_exceptions=True)
    assert order == ["first", "big", "small"]
    assert budget.free == budget.total == 4


async def test_addresses_dialled_per_request_are_capped_all_told(
    stage: Stage, sqlite_url: str
) -> None:
    vantage = stage.vantage(dials_per_request=100)
    async with running(sqlite_url, control=vantage, watchlist=stage.watchlist) as collector:
        capped = dataclasses.replace(stage, collector=collector)
        status, answer = await capped.ask(*({"url": stage.url(name)} for name in BUSY))
        async with collector.client.get("/metrics") as r:
            metrics = await r.text()
    assert status == 200
    assert stage.web.accepted == 100  # of 20 x 8
    dialled = [len(c["control"]["tcp"]) for c in answer["controls"]]
    assert sum(dialled) == 100
    assert "surblocage_control_addresses_ignored_total 60.0" in metrics


async def test_the_control_refuses_a_request_without_a_probe_token(stage: Stage) -> None:
    for token in ("", "not-a-token"):
        status, answer = await stage.ask({"url": stage.url("page.control.test")}, token=token)
        assert status == 401
        assert answer["error"].startswith("Authorization: ")
    assert stage.web.accepted == 0  # nothing measured for a stranger


async def test_a_public_control_serves_a_request_without_a_token(
    stage: Stage, sqlite_url: str
) -> None:
    public = {"control.public": True}
    async with running(
        sqlite_url, control=stage.vantage(), watchlist=stage.watchlist, **public
    ) as collector:
        anyone = dataclasses.replace(stage, collector=collector)
        status, answer = await anyone.ask({"url": stage.url("page.control.test")}, token="")
    assert status == 200
    assert answer["controls"][0]["control"]["http"]["status"] == 200


async def test_control_requests_are_limited_per_probe_and_in_all(
    stage: Stage, sqlite_url: str
) -> None:
    limits = {"control.rate_per_probe_per_minute": 2, "control.rate_per_minute": 3}
    async with running(
        sqlite_url, control=stage.vantage(), watchlist=stage.watchlist, **limits
    ) as collector:
        limited = dataclasses.replace(stage, collector=collector)
        _, other = await collector.register()
        target = {"url": stage.url("page.control.test")}
        first = [(await limited.ask(target))[0] for _ in range(3)]
        second = [(await limited.ask(target, token=other))[0] for _ in range(2)]
    assert first == [200, 200, 429]  # this probe's two a minute
    assert second == [200, 429]  # the collector's three a minute, the refused one not counted
