"""A collector in the lab's internet, as the lab tests that judge flags start it: a watchlist,
an ASN database, flags that count the lab's probes, and `surblocage-collector serve`."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterable, Mapping, Sequence

import yaml

from tests.lab.topology import Lab

BIN = pathlib.Path(sys.executable).parent


def write_asn_database(
    path: pathlib.Path, networks: Iterable[tuple[Sequence[str], tuple[int, str]]]
) -> None:
    """Write a GeoLite2-ASN database giving each set of networks its (AS number, name)."""
    import mmdb_writer
    import netaddr

    writer = mmdb_writer.MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN"
    )
    for nets, (asn, name) in networks:
        writer.insert_network(
            netaddr.IPSet(list(nets)),
            {"autonomous_system_number": asn, "autonomous_system_organization": name},
        )
    writer.to_db_file(str(path))


def start_collector(
    lab: Lab, tmp: pathlib.Path, watchlist: Mapping[str, tuple[str, str]], asn_db: pathlib.Path
) -> None:
    """Serve a collector on the lab's collector address, with its own control vantage, over
    ``watchlist`` (id -> (URL, category)), its database and config in ``tmp``."""
    services = [
        {"id": sid, "name": sid, "category": cat, "urls": [url]}
        for sid, (url, cat) in watchlist.items()
    ]
    (tmp / "watchlist.yaml").write_text(yaml.safe_dump({"services": services}))
    config = {
        "listen": f"{lab.collector_addr}:{lab.collector_port}",
        "database": {"url": f"sqlite:///{tmp / 'c.db'}"},
        "watchlist": str(tmp / "watchlist.yaml"),
        "control": {"resolver": lab.auth_dns},
        "tls": {"ca_file": lab.ca_file},
        "network": {"allow_networks": [lab.allow_network]},
        "asn": {"database": str(asn_db)},
        # the lab's probes register a moment before they measure, several to a LAN
        "flags": {"min_probe_age_seconds": 0, "source_prefix_v4": 32, "source_prefix_v6": 128},
    }
    (tmp / "collector.yaml").write_text(yaml.safe_dump(config))
    lab.spawn(
        "internet",
        [str(BIN / "surblocage-collector"), "serve", "--config", str(tmp / "collector.yaml")],
        name="collector",
        ready_tcp=(lab.collector_addr, lab.collector_port),
    )
