"""`status` names the network the collector's ASN database sees when the config declares none."""

from __future__ import annotations

import pathlib

from collector.store import migrate
from probe import config
from probe.daemon import status
from tests.collector.harness import running


async def test_status_shows_the_collectors_view_of_the_line(
    tmp_path: pathlib.Path, asn_file: str
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    async with running(url, **{"asn.database": asn_file}) as c:
        base = str(c.client.make_url("")).rstrip("/")
        cfg = config.load_config(
            None, {"collector.url": base, "state_dir": str(tmp_path / "state")}
        )
        found = await status.gather(cfg)
    assert found["network"]["asn"] == 64500
    assert found["network"]["name"] == "Test ISP"
    assert "AS64500 Test ISP, as the collector's ASN database sees" in status.render(found)


async def test_status_without_asn_database_leaves_it_to_the_collector(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    migrate(url)
    async with running(url) as c:
        base = str(c.client.make_url("")).rstrip("/")
        cfg = config.load_config(
            None, {"collector.url": base, "state_dir": str(tmp_path / "state")}
        )
        found = await status.gather(cfg)
    assert (found["network"]["asn"], found["network"]["source"]) == (None, "collector")
