"""The submitting address is used for one ASN lookup, then appears nowhere: not in the database
files, not in the logs (text or JSON), not even when aiohttp itself complains about a request."""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket

import aiohttp
import pytest

from collector.store import MeasurementQuery, open_store
from tests.collector.harness import batch, register, submit
from tests.support.collector_process import CollectorProcess, write_config

# a loopback address nothing else uses: the collector listens on 127.0.0.1, which is legitimately
# in its logs, so the client binds its sockets to this one
SOURCE = "127.23.45.67"
NEEDLES = (SOURCE.encode(), socket.inet_aton(SOURCE), f"::ffff:{SOURCE}".encode())


def assert_absent(path: pathlib.Path) -> None:
    data = path.read_bytes()
    for needle in NEEDLES:
        assert needle not in data, f"{needle!r} found in {path.name}"


async def bad_http(port: int) -> bytes:
    """Send a request with a malformed header from SOURCE: aiohttp logs such a client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(SOURCE, 0))
    writer.write(b"POST /api/v1/measurements HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def traffic(url: str, port: int) -> None:
    """Everything a probe (and a broken client) may do, from SOURCE."""
    connector = aiohttp.TCPConnector(local_addr=(SOURCE, 0))
    async with aiohttp.ClientSession(connector=connector) as s:
        _, token = await register(s, url, asn=3215, network="Orange")
        assert await submit(s, url, token, batch(range(3))) == (
            200,
            {"accepted": 3, "inserted": 3, "duplicates": 0},
        )
        assert (await submit(s, url, token, batch(range(3))))[0] == 200
        assert (await submit(s, url, "not-a-token", batch([9])))[0] == 401
        assert (await submit(s, url, token, {"records": []}))[0] == 400
        async with s.get(f"{url}/api/v1/measurements?colour=1") as r:
            assert r.status == 400
        async with s.get(f"{url}/healthz") as r:
            assert r.status == 200
    assert (await bad_http(port)).startswith(b"HTTP/1.0 400")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_submitting_address_is_kept_nowhere(
    tmp_path: pathlib.Path, asn_file: str, log_format: str
) -> None:
    url = f"sqlite:///{tmp_path}/db/collector.db"
    log = {"format": log_format, "level": "debug"}
    config = write_config(tmp_path / "collector.yaml", asn={"database": asn_file}, log=log)
    proc = CollectorProcess(url, tmp_path / "stderr.log", "--config", config)
    try:
        await traffic(proc.url, proc.port)
        files = sorted((tmp_path / "db").iterdir())
        assert any(f.name.endswith("-wal") for f in files)  # searched while the WAL is live
        for f in files:
            assert_absent(f)
    finally:
        assert proc.stop() == 0
    for f in (tmp_path / "db").iterdir():
        assert_absent(f)
    assert_absent(proc.log)
    logs = proc.log_text()
    assert "batch stored" in logs  # the logs were captured, at debug level
    assert "Error handling request from <address>" in logs  # aiohttp's complaint, blanked
    if log_format == "json":
        assert all(json.loads(line)["msg"] for line in logs.splitlines())
    with open_store(url) as db:
        [probe] = db.list_probes()
        items = db.query_measurements(MeasurementQuery()).items
    # the ASN database decided the network, not what the probe declared
    assert (probe.last_asn, probe.last_network) == (64500, "Test ISP")
    assert {(i["probe"]["asn"], i["probe"]["network"]) for i in items} == {(64500, "Test ISP")}
    assert len(items) == 3
