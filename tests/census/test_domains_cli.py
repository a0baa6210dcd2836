"""`domains import` and `domains resolve` as real processes; serve's background refresh."""

from __future__ import annotations

import gzip
import pathlib
import subprocess
import sys
import urllib.request

import pytest
import sqlalchemy as sa

from collector.census import index
from collector.store import migrate, open_store
from collector.store.schema import domains
from tests.store.conftest import db_url  # noqa: F401  (a fixture, shared)
from tests.support import dns_server
from tests.support.collector_process import ROOT, CollectorProcess, write_config
from tests.support.dns_server import Zone
from tests.support.postgres import reset_pg

V4, V6 = "93.184.215.14", "2606:4700::6810:84e5"
PATIENCE_SECONDS = 120  # a liveness bound, not a timing assertion


def collector(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "collector", *args]
    return subprocess.run(
        argv, cwd=ROOT, input=stdin.decode() if stdin else None, capture_output=True, text=True,
        timeout=PATIENCE_SECONDS, check=False,
    )  # fmt: skip


def ranks(url: str) -> dict[str, tuple[int | None, bool]]:
    with open_store(url) as store:
        query = sa.select(domains.c.name, domains.c.rank, domains.c.intended)
        return {r[0]: (r[1], r[2]) for r in store.read(lambda c: c.execute(query).all())}


def test_import_prints_what_it_did_and_the_first_skipped_lines(
    db_url: str,  # noqa: F811
    tmp_path: pathlib.Path,
) -> None:
    if db_url.startswith("postgresql"):
        migrate(db_url)  # PostgreSQL is migrated on purpose; SQLite on the spot
    first = tmp_path / "top.csv.gz"  # gzip, whatever the name says
    first.write_bytes(gzip.compress(b"rank,domain\n1,a.example\n2,192.0.2.1\n3,b.example\n"))
    done = collector("domains", "import", "--db", db_url, str(first))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "imported 2 names (2 new, 0 updated), skipped 1 lines",
        "  line 3: an IP address, not a name",
    ]
    second = tmp_path / "blocked.txt"
    second.write_text("# court order\nb.example\nc.example\n")
    done = collector("domains", "import", "--db", db_url, "--intended", str(second))
    assert done.stdout == "imported 2 names (1 new, 1 updated), skipped 0 lines\n"
    done = collector("domains", "import", "--db", db_url, "-", stdin=b"5,a.example\n")
    assert done.stdout.startswith("imported 1 names (0 new, 1 updated)")
    assert ranks(db_url) == {
        "a.example": (5, False),
        "b.example": (3, True),
        "c.example": (None, True),
    }


def test_usage_errors_exit_2_naming_the_argument(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    missing = collector("domains", "import", "--db", url, str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "argument FILE" in missing.stderr and "nope.csv" in missing.stderr
    no_file = collector("domains", "import", "--db", url)
    assert no_file.returncode == 2 and "FILE" in no_file.stderr
    bad_qps = collector("domains", "resolve", "--db", url, "--qps", "fast")
    assert bad_qps.returncode == 2 and "--qps" in bad_qps.stderr
    zero_qps = collector("domains", "resolve", "--db", url, "--qps", "0")
    assert zero_qps.returncode == 2 and "census.qps" in zero_qps.stderr
    bad_resolver = collector("domains", "resolve", "--db", url, "--resolver", "dns.example")
    assert bad_resolver.returncode == 2 and "census.resolver" in bad_resolver.stderr
    no_verb = collector("domains")
    assert no_verb.returncode == 2 and "VERB" in no_verb.stderr
    for verb in ("import", "resolve"):
        helped = collector("domains", verb, "--help")
        assert helped.returncode == 0 and "--db URL" in helped.stdout


@pytest.mark.postgres
def test_an_unmigrated_postgresql_is_a_usage_error(pg_database: str) -> None:
    reset_pg(pg_database)  # SQLite is migrated on the spot; PostgreSQL on purpose, once
    done = collector("domains", "resolve", "--db", pg_database, "--resolver", "127.0.0.1")
    assert done.returncode == 2 and "migrate" in done.stderr


def test_resolve_resolves_every_name_once_and_summarises(
    db_url: str,  # noqa: F811
    tmp_path: pathlib.Path,
) -> None:
    if db_url.startswith("postgresql"):
        migrate(db_url)
    listed = tmp_path / "list.txt"
    listed.write_text("a.example\nb.example\ngone.example\nlocal.example\n")
    assert collector("domains", "import", "--db", db_url, str(listed)).returncode == 0
    zones = {
        "a.example": Zone([V4, V6]),
        "b.example": Zone([V4]),
        "gone.example": Zone(rcode="NXDOMAIN"),
        "local.example": Zone(["10.1.2.3"]),
    }
    with dns_server.serving_in_thread() as server:
        server.zones.update(zones)
        resolver = f"{server.host}:{server.port}"
        done = collector(
            "domains", "resolve", "--db", db_url, "--resolver", resolver, "--qps", "500",
            "--allow-network", "10.0.0.0/8",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert server.names().count("a.example") == 2  # A and AAAA, once
    assert done.stdout.startswith("resolved 4 names: 3 answered, 3 addresses, 0 failures, "), (
        done.stdout
    )
    with open_store(db_url) as store:
        assert store.read(index.current, "a.example") == {V4, V6}
        assert store.read(index.current, "local.example") == {"10.1.2.3"}
        assert store.read(index.current, "gone.example") == set()


def test_serve_resolves_the_index_in_the_background(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    listed = tmp_path / "list.csv"
    listed.write_text("1,a.example\n2,b.example\n")
    assert collector("domains", "import", "--db", url, str(listed)).returncode == 0
    with dns_server.serving_in_thread() as server:
        server.zones["a.example"] = Zone([V4])
        config = write_config(
            tmp_path / "collector.yaml",
            census={"resolver": f"{server.host}:{server.port}", "qps": 200, "refresh": 3600},
        )
        proc = CollectorProcess(url, tmp_path / "collector.log", "--config", config)
        try:
            proc.wait_for_log("census: domain index resolved")
            with urllib.request.urlopen(f"{proc.url}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            assert "surblocage_census_index_domains 2.0" in metrics
            assert 'surblocage_census_resolutions_total{result="addresses"} 1.0' in metrics
            assert 'surblocage_census_resolutions_total{result="none"} 1.0' in metrics
            assert proc.stop() == 0
            # a restart within census.refresh resolves nothing again
            asked = len(server.names())
            proc.start()
            proc.wait_for_log("names=0")
            assert len(server.names()) == asked
        finally:
            proc.stop()
    with open_store(url) as store:
        assert store.read(index.current, "a.example") == {V4}
        assert store.read(index.current, "b.example") == set()
