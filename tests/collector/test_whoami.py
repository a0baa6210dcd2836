"""GET /api/v1/whoami: the caller's network from the ASN database, never the caller's address."""

from __future__ import annotations

import json
import pathlib

from collector.store import migrate
from tests.collector.harness import running


async def test_whoami_answers_the_network_and_not_the_address(
    tmp_path: pathlib.Path, asn_file: str
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    async with running(url, **{"asn.database": asn_file}) as c:
        async with c.client.get("/api/v1/whoami") as r:
            assert r.status == 200
            text = await r.text()
    assert json.loads(text) == {"asn": 64500, "network": "Test ISP"}
    assert "127.0.0.1" not in text


async def test_whoami_without_database_says_how_to_declare(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    async with running(url) as c, c.client.get("/api/v1/whoami") as r:
        assert r.status == 404
        assert "network.asn" in (await r.json())["error"]
