"""`status` says when the spool was damaged, where the damaged file went, what was salvaged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from probe import config
from probe.daemon import status
from probe.daemon.spool import SPOOL_FILE, Spool
from tests.daemon.harness import ProbeProcess, watchlist
from tests.support.dns_server import DNSServer
from tests.support.records import nxdomain as measurement


def status_text(state_dir: Path) -> str:
    cfg = config.load_config(None, {"state_dir": str(state_dir)}, environ={})
    return status.render(asyncio.run(status.gather(cfg)))


def spool_line(state_dir: Path) -> str:
    return next(line for line in status_text(state_dir).splitlines() if line.startswith("spool:"))


def test_status_names_a_damaged_spool_before_and_after_run_repairs_it(tmp_path: Path) -> None:
    path = tmp_path / SPOOL_FILE
    spool = Spool(path)
    for n in range(300):
        spool.add(measurement(n))
    spool.close()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])
    assert "damaged (database disk image is malformed): `run` will move it aside" in spool_line(
        tmp_path
    )
    Spool(path).close()  # what `run` does first
    line = spool_line(tmp_path)
    [aside] = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and p.name.endswith("Z")]
    assert "damaged spool moved aside at " in line and str(aside) in line
    salvaged = Spool(path).depth()
    assert 0 < salvaged < 300 and f"{salvaged} records salvaged" in line


def test_run_logs_a_zero_byte_spool_moved_aside(tmp_path: Path, dns_server: DNSServer) -> None:
    wl = tmp_path / "watchlist.yaml"
    wl.write_text(yaml.safe_dump(watchlist(["z1", "z2"])))
    p = ProbeProcess(tmp_path, dns_server.port, watchlist=str(wl))
    p.state_dir.mkdir()
    (p.state_dir / SPOOL_FILE).write_bytes(b"")
    assert p.run("run", "--once") == 0, p.log.read_text()
    [event] = p.events("spool damaged: moved aside, its readable records salvaged")
    assert (event["level"], event["why"], event["salvaged"]) == ("error", "zero bytes", 0)
    assert Path(event["moved_to"]).parent == p.state_dir
    assert Path(event["moved_to"]).read_bytes() == b""
    assert len(p.spool_ids()) == 2  # the new spool takes the cycle's records
