"""The diagnostics end to end: real `run --once` probes with CAP_NET_RAW, to the collector's flags.

The lab is tests/lab/diagnostics_world.py's multi-hop ISP "a" (its middlebox on core router 1,
an on-path DNS injector on its LAN), with three probes: a1 and a2 run as root (CAP_NET_RAW), a3
as root without CAP_NET_RAW (what a volunteer gets once the unit drops it). Every probe is a real
`surblocage-probe run --once` process, with its own state dir, registering with and submitting
to a real `surblocage-collector serve` of the lab's internet, whose ASN database maps the ISP's
LAN and its core routers' links to ASes, as MaxMind would.

The flags of the SNI-reset and the injected service must carry, in GET /api/v1/flags, in the
flag page and in the flags export, what the diagnostics found across the probes: the reset's
origin, the injection, the hop where the interference sits, its router's address and that
address's AS; when the box moves one hop further, the located hop follows.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import diagnostics_world as diag_world
from tests.lab import lab_collector
from tests.lab.technique import IspSpec
from tests.lab.topology import Lab, default_prefix, unusable_reason

BIN = pathlib.Path(sys.executable).parent
ISP = IspSpec("a", probes=3, techniques=("dns_injection", "sni_reset"), chain=2, box=1)
RAW = ("probe_a1", "probe_a2")  # as root, with CAP_NET_RAW
PLAIN = "probe_a3"  # as root without CAP_NET_RAW
WATCHLIST = {
    "sni-rst": ("https://sni-rst.example/", "sports_legal"),
    "inject": ("https://inject.example/", "general"),
    "ok": ("https://ok.example/", "control"),
}
# the ASN database: the probes' LAN (and its router) is the ISP's access network; its core
# routers' links another AS, so that a located hop's AS is told from the probes' own
ACCESS = (3215, "Orange")
CORE = (5511, "Orange International Carrier")


def write_asn_database(lab: Lab, path: pathlib.Path) -> None:
    a = lab.isp("a")
    cores = [f"{a.uplink_router}/24", *(f"{a.link(i)[0]}/24" for i in (1, 2))]
    lab_collector.write_asn_database(path, (([a.lan], ACCESS), (cores, CORE)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The multi-hop ISP, three probes, and a collector with an ASN database."""
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("diagflags")
    techniques = tuple(diag_world.TECHNIQUES_HERE)
    with Lab(prefix=f"{default_prefix()}e", isps=(ISP,), techniques=techniques) as lab:
        lab.up()  # not the session lab's prefix: its own namespaces
        write_asn_database(lab, tmp / "asn.mmdb")
        lab_collector.start_collector(lab, tmp, WATCHLIST, tmp / "asn.mmdb")
        yield {"lab": lab, "tmp": tmp}


def run_once(world: dict[str, Any], role: str, raw: bool, every_cycle: bool) -> None:
    """One real `surblocage-probe run --once` in ``role``'s namespace, as root (CAP_NET_RAW) or
    as root without it; ``every_cycle`` False: the default diagnostics interval."""
    lab: Lab = world["lab"]
    argv = [str(BIN / "surblocage-probe"), "run", "--once", "--quiet",
            "--collector", lab.collector_url, "--state-dir", str(world["tmp"] / role),
            # the public resolver: the injector forges its answers for inject.example
            "--resolver", lab.public_resolver, "--ca-file", lab.ca_file,
            "--allow-network", lab.allow_network, "--timeout", "3"]  # fmt: skip
    if not raw:
        argv = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--", *argv]
    env = {
        **os.environ,
        # the lab's collector speaks http on a routed (non-loopback) address
        "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true",
        "SURBLOCAGE_PROBE_CENSUS_ENABLED": "false",
    }
    if every_cycle:  # default: a target is diagnosed at most once in 6 hours
        env["SURBLOCAGE_PROBE_DIAGNOSTICS_INTERVAL"] = "0"
    r = lab.exec(role, argv, timeout=300, env=env)
    assert r.returncode == 0, f"{role}: {r.stderr}"


def cycle(world: dict[str, Any], every_cycle: bool = True) -> None:
    """Every probe runs one cycle at once and submits it."""
    jobs = [(role, True) for role in RAW] + [(PLAIN, False)]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        for job in [pool.submit(run_once, world, r, raw, every_cycle) for r, raw in jobs]:
            job.result()


def get(lab: Lab, url: str, text: bool = False) -> Any:
    """GET a document from inside the internet namespace."""
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
    r = lab.exec("internet", [sys.executable, "-c", code, url])
    assert r.returncode == 0, r.stderr
    return r.stdout if text else json.loads(r.stdout)


def open_flags(lab: Lab) -> dict[tuple[str, str], dict[str, Any]]:
    found = get(lab, f"{lab.collector_url}/api/v1/flags?state=open")["flags"]
    return {(f["service"], f["method"]): f for f in found}


def probe_id(world: dict[str, Any], role: str) -> str:
    doc = json.loads((world["tmp"] / role / "identity.json").read_text())
    return str(doc["probe_id"])


def export_csv(world: dict[str, Any], *args: str) -> list[dict[str, str]]:
    """`surblocage-collector export --format csv` of the lab's collector, read back."""
    lab: Lab = world["lab"]
    argv = [str(BIN / "surblocage-collector"), "export", "--config",
            str(world["tmp"] / "collector.yaml"), "--format", "csv", *args]  # fmt: skip
    r = lab.exec("internet", argv)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout)))


def test_diagnostics_reach_the_flags_and_follow_the_box(world: dict[str, Any]) -> None:
    lab: Lab = world["lab"]
    cycle(world, every_cycle=False)  # the first: nothing diagnosed yet

    flags = open_flags(lab)
    assert set(flags) == {("sni-rst", "tls"), ("inject", "dns")}, sorted(flags)
    sni, inject = flags[("sni-rst", "tls")], flags[("inject", "dns")]
    assert sni["network"] == ACCESS[1]

    # the reset: from a box on the path, at core router 1 (hop 2), in the core's AS; a3 could
    # not diagnose
    hop, address = diag_world.BOX_HOPS[1]
    d = d_sni = sni["diagnostics"]
    assert (d["probes"], d["skipped"]) == (2, 1), d
    assert d["reset_origin"] == {"path": 2, "server": 0, "unknown": 0}
    assert d["location"] == {
        "hop": hop, "address": address, "asn": CORE[0], "network": CORE[1], "probes": 2,
    }  # fmt: skip
    # the injection: forged on the path, by the injector on the LAN of router_a (hop 1)
    d = inject["diagnostics"]
    assert (d["probes"], d["skipped"]) == (2, 1), d
    assert d["dns_injection"]["on_path"] + d["dns_injection"]["race"] == 2, d
    assert d["location"] == {
        "hop": 1, "address": lab.isp("a").router, "asn": ACCESS[0], "network": ACCESS[1],
        "probes": 2,
    }  # fmt: skip

    # the flag page says it in words
    page = get(lab, f"{lab.collector_url}/flags/{sni['id']}?lang=en", text=True)
    assert "Reset sent by a box on the path, seen by 2 probes." in page
    assert (
        f"Interference at hop {hop} (AS{CORE[0]} {CORE[1]}, {address}), located there by 2 probes."
        in page
    )
    assert "1 probe could not diagnose" in page
    page = get(lab, f"{lab.collector_url}/flags/{inject['id']}?lang=en", text=True)
    # the two probes may tell the forgery as on_path or as race (timing): 2 alike or 1 and 1
    assert "seen by 2 probes." in page or page.count("seen by 1 probe.") == 2
    assert f"Interference at hop 1 (AS{ACCESS[0]}" in page

    # the flags export carries the same, in its diag_* columns
    rows = {row["id"]: row for row in export_csv(world, "--what", "flags")}
    row = rows[sni["id"]]
    assert {k: row[k] for k in row if k.startswith("diag_")} == {
        "diag_probes": "2", "diag_skipped": "1",
        "diag_dns_injection_on_path": "0", "diag_dns_injection_race": "0",
        "diag_dns_injection_none": "0",
        "diag_reset_origin_server": "0", "diag_reset_origin_path": "2",
        "diag_reset_origin_unknown": "0",
        "diag_location_hop": str(hop), "diag_location_address": address,
        "diag_location_asn": str(CORE[0]), "diag_location_network": CORE[1],
        "diag_location_probes": "2",
    }  # fmt: skip
    assert rows[inject["id"]]["diag_location_address"] == lab.isp("a").router

    # the probe without CAP_NET_RAW: the same verdicts, and its stored records say why it did
    # not diagnose
    plain = probe_id(world, PLAIN)
    for service in ("sni-rst", "inject", "ok"):
        url = f"{lab.collector_url}/api/v1/measurements?service={service}&limit=10"
        stored = get(lab, url)["measurements"]
        by_probe = {m["probe"]["id"]: m for m in stored}
        assert len(by_probe) == 3, stored
        verdicts = {json.dumps(m["verdict"], sort_keys=True) for m in by_probe.values()}
        assert len(verdicts) == 1, (service, verdicts)
        if service == "ok":
            assert all(m["diagnostics"] is None for m in by_probe.values())
        else:
            assert by_probe[plain]["diagnostics"] == {"skipped": "no_raw_socket"}
    # and the measurements export has each record's diagnosis in its diag_* columns
    measured = {r["probe_id"]: r for r in export_csv(world, "--service", "sni-rst")}
    assert measured[plain]["diag_skipped"] == "no_raw_socket"
    for role in RAW:
        row = measured[probe_id(world, role)]
        assert {k: row[k] for k in row if k.startswith("diag_")} == {
            "diag_skipped": "", "diag_dns_injection": "", "diag_reset_origin": "path",
            "diag_location_hop": str(hop), "diag_location_address": address,
            "diag_location_asn": str(CORE[0]), "diag_location_network": CORE[1],
        }, role  # fmt: skip

    # the box moves one hop further. With the default interval (a target diagnosed at most
    # once in 6 hours) the next cycle does not diagnose again: its records say so, and each
    # probe still speaks by its latest diagnosis, the old hop's
    first = d_sni["location"]
    lab.move_box("a", 2)
    try:
        cycle(world, every_cycle=False)
        latest = get(lab, f"{lab.collector_url}/api/v1/measurements?service=sni-rst&order=desc")
        for m in latest["measurements"][:3]:
            assert m["verdict"]["status"] == "blocked"
            skipped = "no_raw_socket" if m["probe"]["id"] == plain else "interval"
            assert m["diagnostics"] == {"skipped": skipped}, m["diagnostics"]
        d = open_flags(lab)[("sni-rst", "tls")]["diagnostics"]
        assert (d["probes"], d["skipped"], d["location"]) == (2, 1, first), d

        # diagnosed again (interval 0), the probes locate the box where it is now
        cycle(world)
    finally:
        lab.move_box("a", 1)
    hop, address = diag_world.BOX_HOPS[2]
    d = open_flags(lab)[("sni-rst", "tls")]["diagnostics"]
    assert (d["probes"], d["skipped"]) == (2, 1), d
    assert d["reset_origin"] == {"path": 2, "server": 0, "unknown": 0}
    assert d["location"] == {
        "hop": hop, "address": address, "asn": CORE[0], "network": CORE[1], "probes": 2,
    }  # fmt: skip
