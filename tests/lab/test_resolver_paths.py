"""Resolver paths in the lab: the ISP's resolver, a public resolver under blocking orders, an
honest one, DoH and DoT, side by side in real `check` and `run --once` processes, and the flags
the collector keeps per (network, resolver path) from them.

ISP "a" answers NXDOMAIN for dns-nx.example (ISP "b" answers it truly); the lab's "Google"
(public_resolvers.CENSOR) answers REFUSED with EDE 16 for the names on its order list; the honest
resolver, DoH and DoT answer the truth. A collector in the internet ns is the control (and, for
`run`, the store).
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.lab import public_resolvers
from tests.lab.topology import Lab

BIN = pathlib.Path(sys.executable).parent


@pytest.fixture(scope="module")
def control(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lab's collector as control and store, with an ASN database: ISP a's LAN and uplink
    in AS3215, ISP b's in AS12322, the internet's resolvers in AS15169. A probe's records count
    in flags from its registration on (flags.min_probe_age_seconds 0)."""
    database = tmp_path_factory.mktemp("asn") / "asn.mmdb"
    write_asn_database(lab, database)
    argv = [
        str(BIN / "surblocage-collector"), "serve", "--db", f"sqlite:///{database.parent}/c.db",
        "--listen", f"{lab.collector_addr}:{lab.collector_port}",
        "--resolver", lab.public_resolver, "--ca-file", lab.ca_file,
        "--allow-network", lab.allow_network,
    ]  # fmt: skip
    env = {
        **os.environ, "SURBLOCAGE_COLLECTOR_CONTROL_PUBLIC": "true",
        "SURBLOCAGE_COLLECTOR_ASN_DATABASE": str(database),
        "SURBLOCAGE_COLLECTOR_FLAGS_MIN_PROBE_AGE_SECONDS": "0",
    }  # fmt: skip
    running = lab.spawn(
        "internet", argv, "collector", (lab.collector_addr, lab.collector_port), env=env
    )
    yield lab.control_url
    lab.stop(running)


def write_asn_database(lab: Lab, path: pathlib.Path) -> None:
    import mmdb_writer
    import netaddr

    a, b = lab.isp("a"), lab.isp("b")
    writer = mmdb_writer.MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN"
    )
    networks = {
        (3215, "Orange"): [a.lan, str(ipaddress.ip_network(f"{a.uplink_router}/24", False))],
        (12322, "Free"): [b.lan, str(ipaddress.ip_network(f"{b.uplink_router}/24", False))],
        (15169, "Google"): ["10.200.3.0/24"],
    }
    for (asn, name), nets in networks.items():
        writer.insert_network(
            netaddr.IPSet(nets),
            {"autonomous_system_number": asn, "autonomous_system_organization": name},
        )
    writer.to_db_file(str(path))


def check(lab: Lab, control: str, fingerprints: str | None, *urls: str) -> list[dict[str, Any]]:
    resolvers = [a for p in public_resolvers.paths(lab.resolver("a")) for a in ("--resolver", p)]
    argv = [
        str(BIN / "surblocage-probe"), "check", "--json", "--quiet", "--timeout", "2",
        *resolvers, "--ca-file", lab.ca_file, "--allow-network", lab.allow_network,
        "--control", control, *(["--fingerprints", fingerprints] if fingerprints else []), *urls,
    ]  # fmt: skip
    done = lab.exec("probe_a", argv, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def by_path(record: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    return {
        p["path"]: (p["status"], p["method"], p["detail"], p["blockpage"]) for p in record["paths"]
    }


def test_each_path_gets_its_own_verdict(lab: Lab, control: str) -> None:
    nx, ok = check(lab, control, None, "https://dns-nx.example/", "https://ok.example/")
    assert by_path(nx) == {
        "isp": ("blocked", "dns", "nxdomain", None),
        "google": ("blocked", "dns", "refused", "ede_16"),
        "honest": ("ok", None, None, None),
        "doh": ("ok", None, None, None),
        "dot": ("ok", None, None, None),
    }, json.dumps(nx)[:3000]
    assert (nx["verdict"]["status"], nx["verdict"]["detail"]) == ("blocked", "nxdomain")
    assert (nx["probe"]["path"], nx["probe"]["resolver"]) == ("isp", lab.resolver("a"))
    transports = {(r["path"], r["transport"]) for r in nx["dns"]}
    assert transports == {
        ("isp", "udp"), ("google", "udp"), ("honest", "udp"), ("doh", "doh"), ("dot", "dot"),
    }  # fmt: skip
    # the addresses the other paths answered were dialled: DNS-only blocking, not the address
    real = {a for r in nx["dns"] if r["path"] == "honest" for a in r["answers"]}
    assert real and real <= {t["ip"] for t in nx["tcp"] if t["failure"] is None}
    assert {p: v[0] for p, v in by_path(ok).items()} == dict.fromkeys(by_path(ok), "ok")


def test_a_lie_to_a_block_page_reads_as_a_dns_block(
    lab: Lab, control: str, tmp_path: pathlib.Path
) -> None:
    # the block page recognised by its body only (no fingerprint of its address): the
    # ministry-style case, where the resolver's answer is the interference
    whole = yaml.safe_load((pathlib.Path(__file__).with_name("fingerprints.yaml")).read_text())
    body_only = [f for f in whole["fingerprints"] if f["kind"] == "http_body"]
    path = tmp_path / "body.yaml"
    path.write_text(yaml.safe_dump({"fingerprints": body_only}))
    os.chmod(tmp_path, 0o755)
    (record,) = check(lab, control, str(path), "http://dns-bp.example/")
    v = record["verdict"]
    assert (v["status"], v["method"], v["detail"], v["blockpage"]) == (
        "blocked", "dns", "blockpage_ip", "lab_isp_blockpage_body",
    ), json.dumps(record)[:3000]  # fmt: skip
    assert by_path(record)["honest"][0] == "ok"


def test_run_records_which_resolver_the_line_uses(
    lab: Lab, control: str, tmp_path: pathlib.Path
) -> None:
    run_once(lab, "probe_a", tmp_path, "nx")
    url = f"{lab.collector_url}/api/v1/measurements?service=nx&limit=10"
    stored = lab.run("internet", _get_json, url)
    records = [r for r in stored["measurements"] if r["probe"].get("path") == "isp"]
    assert records, json.dumps(stored)[:2000]
    # the ISP's resolver asks the authoritative from its uplink address: the collector keeps
    # its prefix only
    uplink = ipaddress.ip_network(f"{lab.isp('a').uplink_router}/24", strict=False)
    assert records[0]["probe"]["whoami"] == str(uplink)
    # counted under its ISP's resolver: the whoami's network is the record's
    assert (records[0]["probe"]["asn"], records[0]["probe"]["whoami_asn"]) == (3215, 3215)
    assert records[0]["probe"]["resolver_network"] == "isp"
    assert by_path(records[0])["google"] == ("blocked", "dns", "refused", "ede_16")


def test_flags_per_network_and_resolver_path(
    lab: Lab, control: str, tmp_path: pathlib.Path
) -> None:
    # one probe on each ISP, each testing its ISP's resolver and the "Google" under orders:
    # Google refuses the name on both networks (a signature of its own: one look opens a
    # flag), ISP a answers NXDOMAIN (one source, one cycle: not yet a flag), ISP b the truth
    for role in ("probe_a", "probe_b"):
        run_once(lab, role, tmp_path / role, "ordered")
    url = f"{lab.collector_url}/api/v1/flags?service=ordered"
    found = lab.run("internet", _get_json, url)["flags"]
    shown = sorted(
        (f["network"], f["resolver"], f["method"], f["state"], f["scope"]) for f in found
    )
    assert shown == [
        ("Free", "google", "dns", "open", "resolver"),
        ("Orange", "google", "dns", "open", "resolver"),
    ], json.dumps(found)[:3000]
    assert {f["asn"] for f in found} == {3215, 12322}
    google = lab.run("internet", _get_json, f"{url}&resolver=google")["flags"]
    assert sorted(f["id"] for f in google) == sorted(f["id"] for f in found)
    assert lab.run("internet", _get_json, f"{url}&resolver=isp")["flags"] == []
    # the flag page reads it as the resolver's: blocked on every network
    page = lab.run("internet", _get_text, f"{lab.collector_url}/flags/{found[0]['id']}?lang=en")
    assert "google blocks ordered on every network" in page


def run_once(lab: Lab, role: str, tmp_path: pathlib.Path, service_id: str) -> None:
    """Run `run --once` in ``role``'s namespace on a watchlist of dns-nx.example as
    ``service_id``, through its ISP's resolver and the lab's public ones."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp_path, 0o755)
    service = {
        "id": service_id,
        "name": service_id,
        "category": "iptv_legal",
        "urls": ["https://dns-nx.example/"],
    }
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({"services": [service]}))
    isp = role.removeprefix("probe_")[0]
    resolvers = [a for p in public_resolvers.paths(lab.resolver(isp)) for a in ("--resolver", p)]
    argv = [
        str(BIN / "surblocage-probe"), "run", "--once", "--quiet", "--collector",
        lab.collector_url, "--state-dir", str(tmp_path / "state"), "--watchlist",
        str(tmp_path / "w.yaml"), *resolvers, "--ca-file", lab.ca_file, "--allow-network",
        lab.allow_network, "--timeout", "2",
    ]  # fmt: skip
    env = {
        **os.environ, "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true",
        "SURBLOCAGE_PROBE_DNS_WHOAMI": public_resolvers.WHOAMI,
    }  # fmt: skip
    done = lab.exec(role, argv, timeout=120, env=env)
    assert done.returncode == 0, done.stderr


async def _get_json(url: str) -> Any:
    return json.loads(await _get_text(url))


async def _get_text(url: str) -> str:
    import asyncio

    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as r:
            return str(r.read().decode())

    return await asyncio.to_thread(get)
