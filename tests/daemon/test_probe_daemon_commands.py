"""The probe's commands around the daemon: register, status, usage errors, run --once; check."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from probe import cli
from probe.daemon import identity, status
from probe.diagnostics import platform
from tests.daemon.conftest import InProcessCollector
from tests.daemon.harness import DOMAIN, ProbeProcess, free_port
from tests.support.dns_server import DNSServer


async def main(*argv: str) -> int:
    """Run a command in a worker thread: the in-process collector keeps this thread's loop."""
    return await asyncio.to_thread(cli.main, list(argv))


async def test_register_writes_a_private_identity_and_never_prints_the_token(
    collector: InProcessCollector, tmp_path: Path, capsys: Any
) -> None:
    state = tmp_path / "state"
    assert await main("register", "--collector", collector.url, "--state-dir", str(state)) == 0
    ident = identity.load_identity(state)
    assert ident is not None
    out = capsys.readouterr().out
    assert out == (
        f"registered with {collector.url} as {ident.probe_id}; "
        f"identity kept in {state / 'identity.json'}\n"
    )
    assert ident.token not in out
    assert stat.S_IMODE((state / "identity.json").stat().st_mode) == 0o600
    assert await main("register", "--collector", collector.url, "--state-dir", str(state)) == 0
    assert "already registered" in capsys.readouterr().out
    args = ("register", "--force", "--collector", collector.url, "--state-dir", str(state))
    assert await main(*args) == 0
    again = identity.load_identity(state)
    assert again is not None and again.probe_id != ident.probe_id


async def test_register_declares_the_configured_network(
    collector: InProcessCollector, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    args = ("--collector", collector.url, "--state-dir", str(state), "--asn", "3215")
    assert await main("register", *args, "--network", "Orange") == 0
    ident = identity.load_identity(state)
    assert ident is not None
    row = collector.store.probe_by_id(ident.probe_id)
    assert (row.declared_asn, row.declared_network) == (3215, "Orange")


def test_register_needs_a_collector(tmp_path: Path, capsys: Any) -> None:
    assert cli.main(["register", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    why = "register: no collector: give --collector URL or collector.url"
    assert err == f"surblocage-probe: error: {why}\n"


def test_register_with_the_collector_away_fails_in_one_line(tmp_path: Path, capsys: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["register", "--collector", url, "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"surblocage-probe: error: {url}: connection_refused\n"
    assert identity.load_identity(tmp_path) is None


def test_register_waits_for_a_running_daemon_to_stop(tmp_path: Path, capsys: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    fd = identity.lock_state_dir(tmp_path)
    try:
        assert cli.main(["register", "--collector", url, "--state-dir", str(tmp_path)]) == 1
    finally:
        os.close(fd)
    assert "another surblocage-probe run uses this state dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--collector", "ftp://x"], "command line: collector.url: must be an http"),
        (["run", "--watchlist", "/nonexistent.yaml"], "watchlist: no such file"),
        (["run", "--retry-max", "0"], "--retry-max: must be positive"),
        (["status", "--collector", "x"], "collector.url: must be an http or https URL"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    tmp_path: Path, capsys: Any, argv: list[str], message: str
) -> None:
    assert cli.main([*argv, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_broken_watchlist_file_stops_run_before_measuring(tmp_path: Path, capsys: Any) -> None:
    file = tmp_path / "wl.yaml"
    file.write_text("services:\n  - id: x\n    urls: [ftp://x.fr/]\n")
    argv = ["run", "--once", "--watchlist", str(file), "--state-dir", str(tmp_path / "s")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"surblocage-probe: error: {file}: services[0]")
    assert not (tmp_path / "s" / "spool.db").exists()


def test_check_still_prints_one_record_a_target(dns_server: DNSServer, capsys: Any) -> None:
    resolver = f"127.0.0.1:{dns_server.port}"
    argv = ["check", "--json", "--quiet", "--no-control", "--resolver", resolver, f"x.{DOMAIN}"]
    assert cli.main(argv) == 0
    [line] = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["target"]["domain"] == f"x.{DOMAIN}"
    assert record["dns"][0]["failure"] == "dns_nxdomain_error"


def test_run_once_with_the_collector_away_keeps_the_records_and_exits_1(
    tmp_path: Path, dns_server: DNSServer
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    file = tmp_path / "wl.yaml"
    file.write_text(
        f"services:\n  - {{id: d1, name: d1, category: general, urls: [https://d1.{DOMAIN}/]}}\n"
    )
    p = ProbeProcess(tmp_path, dns_server.port, collector__url=url, watchlist=str(file))
    assert p.run("run", "--once") == 1
    assert p.spool_ids() == p.spooled_ids() and len(p.spool_ids()) == 1
    last = p.log.read_text().splitlines()[-1]
    assert last == (
        "surblocage-probe: error: connection_refused; 1 records kept in the spool "
        "(`run` submits them later)"
    )


def test_status_before_anything_happened(tmp_path: Path, capsys: Any) -> None:
    off = platform.unavailable()  # this process's: raw sockets as root, none otherwise
    diagnostics = (
        f"off: {off} ({platform.WHY[off]})"
        if off
        else "on (blocked targets get crafted packets: DNS injection, reset origin, hop)"
    )
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"surblocage-probe status (state dir {tmp_path})",
        "daemon:          not running",
        "probe id:        not registered yet",
        "network:         decided by the collector from the address it sees (its ASN database)",
        "resolver tested: the system's (/etc/resolv.conf)",
        "last cycle:      none yet",
        "last sweep:      none yet",
        "spool:           empty (no spool yet)",
        "last upload:     never",
        "collector:       none configured",
        f"diagnostics:     {diagnostics}",
        "config:          this command's (no daemon has run): file none; control off; every "
        "3600 s (+ up to 300 s); 8 targets at once; budget 50 MiB a cycle; census sweep on "
        "(20.0/s, up to 2000 addresses)",
    ]


def test_status_text_of_a_busy_probe() -> None:
    found = {
        "state_dir": "/var/lib/surblocage-probe",
        "daemon": {"running": True, "pid": 42, "state": "idle", "beat_at": "2026-11-28T20:00:00Z",
                   "next_cycle_at": "2026-11-28T20:10:00Z"},
        "probe_id": "p-1",
        "registered_with": "https://c.example",
        "network": {"asn": 3215, "name": "Orange", "cc": "FR", "source": "config"},
        "resolver": "192.168.1.1",
        "last_cycle": {"started_at": "2026-11-28T19:59:00Z", "outcome": "done", "targets": 40,
                       "measured": 38, "blocked": 3, "skipped_budget": 2},
        "spool": {"depth": 12, "dropped_full": 5, "dropped_old": 1, "quarantined": 2,
                  "quarantine_held": 1, "delivered": 900, "last_upload_at": "2026-11-28T19:59:30Z",
                  "as_of": "2026-11-28T20:00:00Z"},
        "collector": {"url": "https://c.example", "reachable": False,
                      "why": "generic_timeout_error"},
    }  # fmt: skip
    now = datetime.datetime(2026, 11, 28, 20, 0, 30, tzinfo=datetime.UTC)
    assert status.render(found, now).splitlines()[1:] == [
        "daemon:          running (pid 42), idle; last beat 2026-11-28T20:00:00Z (30 s ago); "
        "next cycle 2026-11-28T20:10:00Z",
        "probe id:        p-1 (registered with https://c.example)",
        "network:         AS3215 Orange (FR), declared in the config",
        "resolver tested: 192.168.1.1",
        "last cycle:      2026-11-28T19:59:00Z done: 40 targets, 38 measured, 3 blocked, "
        "2 skipped (budget)",
        "last sweep:      none yet",
        "spool:           12 records waiting, 6 dropped (spool full 5, too old 1), 2 quarantined "
        "(1 kept), 900 delivered (as of 2026-11-28T20:00:00Z)",
        "last upload:     2026-11-28T19:59:30Z",
        "collector:       https://c.example unreachable (generic_timeout_error)",
    ]
