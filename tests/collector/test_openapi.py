"""The OpenAPI document is valid OpenAPI 3.1 and matches the routes: paths, query parameters,
response codes, and every documented answer validates against its schema."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openapi_spec_validator
import pytest

from collector import openapi
from collector.control import ControlVantage
from collector.judge import open_store
from collector.store import migrate
from collector.store.query import decode_cursor
from probe.flow import FlowOptions
from probe.record import CATEGORIES, STATUSES
from tests.browser import scene
from tests.collector.harness import (
    ROOT,
    Collector,
    FakeFlow,
    answer_validator,
    batch,
    record,
    running,
)
from tests.collector.test_api import DEAD_DATABASE
from tests.support import census_rows
from tests.support.census_fill import CensusFill

DOC = openapi.document()
BIG = b'{"x": "' + b"x" * 70_000 + b'"}'


@dataclasses.dataclass
class Stage:
    """Four collectors, each set up for some of the documented answers."""

    main: Collector  # watchlist, control vantage, small body limit
    enrolled: Collector  # registration needs a key; an ASN database
    down: Collector  # the database does not answer; no control, no watchlist
    limited: Collector  # one request a minute from an address
    token: str
    other_probe: str


@pytest.fixture
async def stage(tmp_path: pathlib.Path, asn_file: str) -> AsyncIterator[Stage]:
    urls = [f"sqlite:///{tmp_path}/{name}.db" for name in ("main", "enrolled", "limited")]
    for url in urls:
        migrate(url)
    control = ControlVantage(FlowOptions(resolver="127.0.0.1"), flow=FakeFlow())  # type: ignore[arg-type]
    watchlist = str(ROOT / "configs" / "watchlist.yaml")
    async with contextlib.AsyncExitStack() as stack:
        main = await stack.enter_async_context(
            running(
                urls[0],
                control=control,
                watchlist=watchlist,
                **{"limits.max_body_bytes": 65_536},
            )
        )
        enrolled = await stack.enter_async_context(
            running(urls[1], **{"auth.enrollment_key": "sesame", "asn.database": asn_file})
        )
        dead = stack.enter_context(open_store(DEAD_DATABASE))
        down = await stack.enter_async_context(running(urls[1], store=dead))
        limited = await stack.enter_async_context(
            running(
                urls[2],
                control=control,
                **{
                    "limits.rate_per_source_per_minute": 1,
                    "limits.rate_per_probe_per_minute": 1,
                    "control.rate_per_probe_per_minute": 1,
                },
            )
        )
        _, token = await main.register()
        other, _ = await main.register()
        yield Stage(main, enrolled, down, limited, token, other)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ask(c: Collector, method: str, path: str, **kw: Any) -> tuple[int, str, bytes]:
    if "data" in kw:  # raw bytes, sent as the JSON they claim to be
        kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}
    async with c.client.request(method, path, **kw) as r:
        return r.status, r.content_type, await r.read()


async def limited_submit(s: Stage) -> tuple[int, str, bytes]:
    _, token = await s.limited.register()  # the address's one request this minute
    return await ask(
        s.limited, "POST", "/api/v1/measurements", json=batch([1]), headers=bearer(token)
    )


async def limited_register(s: Stage) -> tuple[int, str, bytes]:
    await s.limited.register()
    return await ask(s.limited, "POST", "/api/v1/probes", json={})


async def limited_control(s: Stage) -> tuple[int, str, bytes]:
    """A probe's second control request in a minute, past control.rate_per_probe_per_minute."""
    _, token = await s.limited.register()
    await ask(s.limited, "POST", CONTROL, json=TARGETS, headers=bearer(token))
    return await ask(s.limited, "POST", CONTROL, json=TARGETS, headers=bearer(token))


async def renew(c: Collector, token: str, probe_id: str) -> tuple[int, str, bytes]:
    return await ask(c, "POST", f"/api/v1/probes/{probe_id}/token", headers=bearer(token))


async def renew_own(s: Stage) -> tuple[int, str, bytes]:
    probe_id, token = await s.main.register()
    return await renew(s.main, token, probe_id)


async def limited_renew(s: Stage) -> tuple[int, str, bytes]:
    """A probe's second request in a minute, past limits.rate_per_probe_per_minute."""
    probe_id, token = await s.limited.register()
    status, _, body = await renew(s.limited, token, probe_id)
    assert status == 200, body
    return await renew(s.limited, json.loads(body)["token"], probe_id)


def claim(s: Stage) -> dict[str, Any]:
    r = record(7)
    r["probe"]["id"] = s.other_probe
    return {"records": [r]}


def sweep_batch(**probe: Any) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    return {"sweeps": [census_rows.sweep([census_rows.entry("192.0.2.1")], now, **probe)]}


SWEEP_BATCH = sweep_batch()


def claim_sweep(s: Stage) -> dict[str, Any]:
    return sweep_batch(id=s.other_probe)


async def limited_addresses(s: Stage) -> tuple[int, str, bytes]:
    await s.limited.register()  # the address's one request this minute
    return await ask(s.limited, "GET", ADDRESSES)


async def limited_sweeps(s: Stage) -> tuple[int, str, bytes]:
    _, token = await s.limited.register()
    return await ask(s.limited, "POST", SWEEPS, json=sweep_batch(), headers=bearer(token))


Scenario = Callable[[Stage], Awaitable[tuple[int, str, bytes]]]
EVIDENCE = "/api/v1/flags/{flag_id}/evidence"
ADDRESSES, SWEEPS = "/api/v1/addresses", "/api/v1/sweeps"


async def ask_census(path: str, status: str, s: Stage) -> tuple[int, str, bytes]:
    """A census read: answered (200), with an unknown parameter (400), or the database down."""
    if status == "400":
        return await ask(s.main, "GET", f"{path}?colour=red")
    return await ask(s.main if status == "200" else s.down, "GET", path)


async def known_address(s: Stage) -> tuple[int, str, bytes]:
    fill = CensusFill(s.main.store)
    fill.names("shared.example", ranks=(7,))
    fill.resolve("shared.example", ("192.0.2.80",), 0)
    fill.flag("Orange", "192.0.2.80", 1, asn=3215)
    return await ask(s.main, "GET", f"{ADDRESS.removesuffix('{ip}')}192.0.2.80")


Scenario = Callable[[Stage], Awaitable[tuple[int, str, bytes]]]
CENSUS = ("/api/v1/census", "/api/v1/census/addresses", "/api/v1/census/history")
ADDRESS = "/api/v1/census/addresses/{ip}"
MEASUREMENTS, CONTROL = "/api/v1/measurements", "/api/v1/control"
TOKEN = "/api/v1/probes/{probe_id}/token"
TARGETS = {"targets": [{"url": "https://www.canalplus.com/"}]}
PLAIN = {"Content-Type": "text/plain"}
# (path, method, documented status) -> a request that must get exactly that status
SCENARIOS: dict[tuple[str, str, str], Scenario] = {
    ("/healthz", "get", "200"): lambda s: ask(s.main, "GET", "/healthz"),
    ("/healthz", "get", "503"): lambda s: ask(s.down, "GET", "/healthz"),
    ("/api/v1/probes", "post", "201"): lambda s: ask(s.main, "POST", "/api/v1/probes", json={}),
    ("/api/v1/probes", "post", "400"): lambda s: ask(s.main, "POST", "/api/v1/probes", data=b"{"),
    ("/api/v1/probes", "post", "403"): lambda s: ask(s.enrolled, "POST", "/api/v1/probes"),
    ("/api/v1/probes", "post", "413"): lambda s: ask(s.main, "POST", "/api/v1/probes", data=BIG),
    ("/api/v1/probes", "post", "415"): lambda s: ask(
        s.main, "POST", "/api/v1/probes", data=b"{}", headers=PLAIN
    ),
    ("/api/v1/probes", "post", "429"): limited_register,
    ("/api/v1/probes", "post", "503"): lambda s: ask(s.down, "POST", "/api/v1/probes", json={}),
    (TOKEN, "post", "200"): renew_own,
    (TOKEN, "post", "401"): lambda s: renew(s.main, "unknown", s.other_probe),
    (TOKEN, "post", "403"): lambda s: renew(s.main, s.token, s.other_probe),
    (TOKEN, "post", "429"): limited_renew,
    (TOKEN, "post", "503"): lambda s: renew(s.down, s.token, s.other_probe),
    (MEASUREMENTS, "post", "200"): lambda s: ask(
        s.main, "POST", MEASUREMENTS, json=batch([1, 2]), headers=bearer(s.token)
    ),
    (MEASUREMENTS, "post", "400"): lambda s: ask(
        s.main, "POST", MEASUREMENTS, json={"records": [{"schema": 2}]}, headers=bearer(s.token)
    ),
    (MEASUREMENTS, "post", "401"): lambda s: ask(s.main, "POST", MEASUREMENTS, json=batch([1])),
    (MEASUREMENTS, "post", "403"): lambda s: ask(
        s.main, "POST", MEASUREMENTS, json=claim(s), headers=bearer(s.token)
    ),
    (MEASUREMENTS, "post", "413"): lambda s: ask(
        s.main, "POST", MEASUREMENTS, data=BIG, headers=bearer(s.token)
    ),
    (MEASUREMENTS, "post", "415"): lambda s: ask(
        s.main, "POST", MEASUREMENTS, data=b"{}", headers={**bearer(s.token), **PLAIN}
    ),
    (MEASUREMENTS, "post", "429"): limited_submit,
    (MEASUREMENTS, "post", "503"): lambda s: ask(
        s.down, "POST", MEASUREMENTS, json=batch([1]), headers=bearer(s.token)
    ),
    (MEASUREMENTS, "get", "200"): lambda s: ask(s.main, "GET", MEASUREMENTS),
    (MEASUREMENTS, "get", "400"): lambda s: ask(s.main, "GET", f"{MEASUREMENTS}?limit=x"),
    (MEASUREMENTS, "get", "503"): lambda s: ask(s.down, "GET", MEASUREMENTS),
    ("/api/v1/export", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/export?format=csv"),
    ("/api/v1/export", "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/export?format=x"),
    ("/api/v1/export", "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/export"),
    (CONTROL, "post", "200"): lambda s: ask(
        s.main, "POST", CONTROL, json=TARGETS, headers=bearer(s.token)
    ),
    (CONTROL, "post", "400"): lambda s: ask(
        s.main, "POST", CONTROL, json={"targets": []}, headers=bearer(s.token)
    ),
    (CONTROL, "post", "401"): lambda s: ask(s.main, "POST", CONTROL, json=TARGETS),
    (CONTROL, "post", "404"): lambda s: ask(s.down, "POST", CONTROL, json=TARGETS),
    (CONTROL, "post", "413"): lambda s: ask(
        s.main, "POST", CONTROL, data=BIG, headers=bearer(s.token)
    ),
    (CONTROL, "post", "415"): lambda s: ask(
        s.main,
        "POST",
        CONTROL,
        data=b"{}",
        headers={"Content-Encoding": "compress", **bearer(s.token)},
    ),
    (CONTROL, "post", "429"): limited_control,
    ("/api/v1/watchlist", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/watchlist"),
    ("/api/v1/watchlist", "get", "404"): lambda s: ask(s.down, "GET", "/api/v1/watchlist"),
    ("/api/v1/flags", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/flags?state=open"),
    ("/api/v1/flags", "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/flags?state=maybe"),
    ("/api/v1/flags", "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/flags"),
    ("/api/v1/collateral", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/collateral"),
    ("/api/v1/collateral", "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/collateral?ip=1"),
    ("/api/v1/collateral", "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/collateral"),
    ("/api/v1/signatures", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/signatures"),
    ("/api/v1/signatures", "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/signatures?asn=x"),
    ("/api/v1/signatures", "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/signatures"),
    (ADDRESSES, "get", "200"): lambda s: ask(s.main, "GET", ADDRESSES),
    (ADDRESSES, "get", "429"): limited_addresses,
    (ADDRESSES, "get", "503"): lambda s: ask(s.down, "GET", ADDRESSES),
    (SWEEPS, "post", "200"): lambda s: ask(
        s.main, "POST", SWEEPS, json=SWEEP_BATCH, headers=bearer(s.token)
    ),
    (SWEEPS, "post", "400"): lambda s: ask(
        s.main, "POST", SWEEPS, json={"sweeps": [{"schema": 2}]}, headers=bearer(s.token)
    ),
    (SWEEPS, "post", "401"): lambda s: ask(s.main, "POST", SWEEPS, json=SWEEP_BATCH),
    (SWEEPS, "post", "403"): lambda s: ask(
        s.main, "POST", SWEEPS, json=claim_sweep(s), headers=bearer(s.token)
    ),
    (SWEEPS, "post", "413"): lambda s: ask(
        s.main, "POST", SWEEPS, data=BIG, headers=bearer(s.token)
    ),
    (SWEEPS, "post", "415"): lambda s: ask(
        s.main, "POST", SWEEPS, data=b"{}", headers={**bearer(s.token), **PLAIN}
    ),
    (SWEEPS, "post", "429"): limited_sweeps,
    (SWEEPS, "post", "503"): lambda s: ask(
        s.down, "POST", SWEEPS, json=SWEEP_BATCH, headers=bearer(s.token)
    ),
    **{
        (path, "get", status): functools.partial(ask_census, path, status)
        for path in CENSUS
        for status in ("200", "400", "503")
    },
    (ADDRESS, "get", "200"): lambda s: known_address(s),
    (ADDRESS, "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/census/addresses/999.1.1.1"),
    (ADDRESS, "get", "404"): lambda s: ask(s.main, "GET", "/api/v1/census/addresses/192.0.2.1"),
    (ADDRESS, "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/census/addresses/192.0.2.1"),
    ("/api/v1/whoami", "get", "200"): lambda s: ask(s.enrolled, "GET", "/api/v1/whoami"),
    ("/api/v1/whoami", "get", "404"): lambda s: ask(s.main, "GET", "/api/v1/whoami"),
    ("/api/v1/openapi.json", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/openapi.json"),
    ("/metrics", "get", "200"): lambda s: ask(s.main, "GET", "/metrics"),
    ("/", "get", "200"): lambda s: ask(s.main, "GET", "/"),
    ("/", "get", "400"): lambda s: ask(s.main, "GET", "/?lang=de"),
    ("/timeline", "get", "200"): lambda s: ask(s.main, "GET", "/timeline?days=3"),
    ("/timeline", "get", "400"): lambda s: ask(s.main, "GET", "/timeline?days=0"),
    ("/collateral", "get", "200"): lambda s: ask(s.main, "GET", "/collateral"),
    ("/collateral", "get", "400"): lambda s: ask(s.main, "GET", "/collateral?asn=x"),
    ("/flags/{flag_id}", "get", "200"): lambda s: with_flag(s, "/flags/{}"),
    ("/flags/{flag_id}", "get", "400"): lambda s: ask(s.main, "GET", "/flags/x"),
    ("/flags/{flag_id}", "get", "404"): lambda s: ask(s.main, "GET", "/flags/" + "0" * 32),
    ("/flags/{flag_id}", "get", "503"): lambda s: ask(s.down, "GET", "/flags/" + "0" * 32),
    ("/measurements/{record_id}", "get", "200"): lambda s: with_flag(s, "/measurements/{}", 1),
    ("/measurements/{record_id}", "get", "400"): lambda s: ask(s.main, "GET", "/measurements/1"),
    ("/measurements/{record_id}", "get", "404"): lambda s: ask(
        s.main, "GET", "/measurements/00000000-0000-4000-8000-000000000000"
    ),
    ("/measurements/{record_id}", "get", "503"): lambda s: ask(
        s.down, "GET", "/measurements/00000000-0000-4000-8000-000000000000"
    ),
    (EVIDENCE, "get", "200"): lambda s: with_flag(s, "/api/v1/flags/{}/evidence"),
    (EVIDENCE, "get", "400"): lambda s: ask(s.main, "GET", "/api/v1/flags/x/evidence"),
    (EVIDENCE, "get", "404"): lambda s: ask(s.main, "GET", f"/api/v1/flags/{'0' * 32}/evidence"),
    (EVIDENCE, "get", "503"): lambda s: ask(s.down, "GET", f"/api/v1/flags/{'0' * 32}/evidence"),
    ("/api/v1/evidence/key", "get", "200"): lambda s: ask(s.main, "GET", "/api/v1/evidence/key"),
    ("/api/v1/evidence/key", "get", "400"): lambda s: ask(
        s.main, "GET", "/api/v1/evidence/key?x=1"
    ),
    ("/api/v1/evidence/key", "get", "503"): lambda s: ask(s.down, "GET", "/api/v1/evidence/key"),
    ("/static/{name}", "get", "200"): lambda s: ask(s.main, "GET", "/static/app.js"),
    ("/static/{name}", "get", "404"): lambda s: ask(s.main, "GET", "/static/missing.js"),
}


async def with_flag(s: Stage, path: str, evidence: int = 0) -> tuple[int, str, bytes]:
    """Fill the main collector with flags, then ask ``path`` for the first one (or, with
    ``evidence``, for its first record)."""
    await scene.populate(s.main)
    _, _, body = await ask(s.main, "GET", "/api/v1/flags?state=open")
    flag = json.loads(body)["flags"][0]
    return await ask(s.main, "GET", path.format(flag["evidence"][0] if evidence else flag["id"]))


def documented() -> list[tuple[str, str, str]]:
    return [
        (path, method, status)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        for status in op["responses"]
    ]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_ref_resolves_and_every_operation_answers_something() -> None:
    refs = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DOC)
    assert refs
    for ref in refs:
        target = resolve({"$ref": ref})
        assert "type" in target or "allOf" in target, ref
    assert DOC["openapi"].startswith("3.")
    for path, method, status in documented():
        assert DOC["paths"][path][method]["responses"][status]["description"]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"] == "3.1.0"
    openapi_spec_validator.validate(DOC)  # raises on an invalid document
    assert {"Measurement", "StoredMeasurement", "Flag", "Collateral", "Error"} <= set(
        DOC["components"]["schemas"]
    )


def test_the_record_schema_is_deep() -> None:
    """Every part of a record is typed, down to the fields of each step's result."""
    schemas = DOC["components"]["schemas"]
    props = schemas["Measurement"]["properties"]
    assert props["probe"] == {"$ref": "#/components/schemas/ProbeInfo"}
    assert props["dns"]["items"] == {"$ref": "#/components/schemas/DNSResult"}
    assert props["tcp"]["items"] == {"$ref": "#/components/schemas/TCPResult"}
    assert props["tls"]["items"] == {"$ref": "#/components/schemas/TLSResult"}
    assert {"$ref": "#/components/schemas/HTTPResult"} in props["http"]["anyOf"]
    assert {"$ref": "#/components/schemas/Control"} in props["control"]["anyOf"]
    assert schemas["DNSResult"]["properties"]["ede"]["items"] == {
        "$ref": "#/components/schemas/EDE"
    }
    assert set(schemas["TCPResult"]["required"]) == {"ip", "port", "failure", "ms"}
    assert schemas["Verdict"]["properties"]["status"]["enum"] == list(STATUSES)
    assert schemas["Target"]["properties"]["category"]["enum"] == list(CATEGORIES)


async def test_the_document_is_served(stage: Stage) -> None:
    async with stage.main.client.get("/api/v1/openapi.json") as r:
        assert r.status == 200
        assert await r.json() == json.loads(json.dumps(DOC))


async def test_every_route_is_documented_and_every_documented_route_exists(stage: Stage) -> None:
    served = {
        (r.resource.canonical, r.method.lower())
        for r in stage.main.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    described = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert served == described


def _examples(path: str) -> dict[str, str]:
    params = DOC["paths"][path]["get"]["parameters"]
    return {p["name"]: str(p["example"]) for p in params}


QUERIED = [
    "/api/v1/measurements", "/api/v1/export", "/api/v1/flags", "/api/v1/collateral", *CENSUS,
    "/api/v1/signatures",
]  # fmt: skip


@pytest.mark.parametrize("path", QUERIED)
async def test_every_documented_parameter_is_accepted(stage: Stage, path: str) -> None:
    examples = _examples(path)
    assert examples
    for name, example in examples.items():
        async with stage.main.client.get(path, params={name: example}) as r:
            assert r.status == 200, (name, await r.text())
    async with stage.main.client.get(path, params=examples) as r:
        assert r.status == 200, await r.text()


@pytest.mark.parametrize("path", QUERIED)
async def test_every_documented_enum_value_is_accepted(stage: Stage, path: str) -> None:
    for p in DOC["paths"][path]["get"]["parameters"]:
        for value in p["schema"].get("enum", []):
            async with stage.main.client.get(path, params={p["name"]: value}) as r:
                assert r.status == 200, (p["name"], value, await r.text())


@pytest.mark.parametrize("path", QUERIED)
async def test_an_undocumented_parameter_is_refused(stage: Stage, path: str) -> None:
    undocumented = {"colour", "page", "offset", "sort", "probe", "country", "limit", "format"}
    for name in sorted(undocumented - set(_examples(path))):
        async with stage.main.client.get(path, params={name: "1"}) as r:
            assert r.status == 400
            assert (await r.json())["error"].startswith(f"{name}: unknown parameter")


def test_the_example_cursor_is_one_the_api_gives_out() -> None:
    assert decode_cursor(openapi.EXAMPLE_CURSOR)[1] == "00000000-0000-4000-8000-000000000000"


def test_every_documented_answer_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(documented())


@pytest.mark.parametrize("key", sorted(SCENARIOS), ids=lambda k: f"{k[1]} {k[0]} {k[2]}")
async def test_documented_answer_is_what_the_server_gives(
    stage: Stage, key: tuple[str, str, str]
) -> None:
    path, method, status = key
    got, content_type, body = await SCENARIOS[key](stage)
    assert str(got) == status, body
    response = DOC["paths"][path][method]["responses"][status]
    media = response["content"]
    assert content_type in {m.split(";")[0] for m in media}
    if content_type == "application/json":
        schema = resolve(media["application/json"]["schema"])
        answer = json.loads(body)
        assert set(schema.get("required", [])) <= set(answer), answer
        if schema.get("additionalProperties") is False:
            assert set(answer) <= set(schema["properties"]), answer
        answer_validator(path, method, status).validate(answer)
