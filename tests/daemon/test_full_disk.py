"""A full disk: the spooled records still leave, new ones are counted as not stored, and said so.

The state dir is a real 2 MiB tmpfs, filled to the last byte (mounting needs root, as in CI).
"""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.daemon.spool import Spool, SpoolFull
from tests.daemon.conftest import InProcessCollector
from tests.daemon.harness import ProbeProcess, collector_process, watchlist
from tests.daemon.test_delivery import spool as spool
from tests.daemon.test_delivery import uploader_for as uploader_for
from tests.support.collector_process import CollectorProcess
from tests.support.dns_server import DNSServer
from tests.support.records import nxdomain as measurement

# the delivery tests' fixtures (spool, uploader_for) are imported above to be used here
NAMES = ["f1", "f2", "f3", "f4", "f5"]


class Disk:
    """A small file system of its own, and a file that takes all its free space."""

    def __init__(self, root: Path) -> None:
        self.root, self.filler = root, root / "filler"

    def fill(self) -> None:
        with self.filler.open("ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * size)

                except OSError as e:
                    assert e.errno == errno.ENOSPC
        with pytest.raises(OSError, match="No space left"):
            (self.root / "probe-of-space").write_bytes(b"\0" * 4096)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A 2 MiB tmpfs mounted on tmp_path/state, unmounted after the test."""
    root = tmp_path / "state"
    root.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(root)]
    r = subprocess.run(mount, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()}): needs root, as in CI")
    try:
        yield Disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


async def test_spooled_records_leave_a_full_disk_and_new_ones_are_counted(
    disk: Disk, collector: InProcessCollector, uploader_for: Any
) -> None:
    path = disk.root / "spool.db"
    spool = Spool(path)
    for n in range(30):
        spool.add(measurement(n))
    spool.close()
    up = await uploader_for(collector.url, batch_size=8)
    await up.try_register()  # the identity is written while there is room
    disk.fill()
    spool = Spool(path)  # it opens on a full disk
    for n in range(30, 33):
        with pytest.raises(SpoolFull):
            spool.add(measurement(n))
    assert spool.stats().not_stored == 3
    up.spool = spool
    await up.drain()
    assert sorted(collector.ids()) == sorted(measurement(n).id for n in range(30))
    assert spool.depth() == 0 and spool.peek(10) == []
    stats = spool.stats()
    assert (stats.delivered, stats.not_stored) == (30, 3)
    disk.free()
    spool.prune()  # the first commit with room writes what waited in memory
    spool.close()
    stats = Spool(path).stats()
    assert (stats.depth, stats.delivered, stats.not_stored) == (0, 30, 3)


@pytest.fixture
def collector_proc(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = collector_process(tmp_path, NAMES)
    yield c
    c.stop()


def test_run_starts_on_a_full_disk_uploads_the_spool_and_says_what_it_lost(
    tmp_path: Path, dns_server: DNSServer, collector_proc: CollectorProcess, disk: Disk
) -> None:
    wl = tmp_path / "watchlist.yaml"
    wl.write_text(yaml.safe_dump(watchlist(NAMES)))
    offline = ProbeProcess(tmp_path, dns_server.port, watchlist=str(wl))
    assert offline.run("run", "--once") == 0, offline.log.read_text()
    kept = offline.spool_ids()
    assert len(kept) == 5
    p = ProbeProcess(
        tmp_path, dns_server.port, watchlist=str(wl), collector__url=collector_proc.url
    )
    assert p.run("register") == 0, p.log.read_text()
    disk.fill()
    assert p.run("run", "--once") == 1, p.log.read_text()
    assert sorted(collector_proc.ids(p.probe_id())) == sorted(kept)
    assert "disk full: 5 records not stored" in p.out.read_text() + p.log.read_text()
    assert len(p.events("record not stored")) == 5
    assert p.events("cycle done")[-1]["not_stored"] == 5
    beat = json.loads((disk.root / "heartbeat.json").read_text())
    assert (beat["spool"]["not_stored"], beat["spool"]["delivered"]) == (5, 5)
    assert p.run("status") == 0
    assert "5 measured but not stored (disk full)" in p.out.read_text()
