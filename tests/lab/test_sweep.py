"""The census sweep in the lab: ISP "a" drops one address, refuses another, resets one SNI.

`surblocage-probe check --sweep --json` runs in probe_a's namespace against a list served from
the "internet" namespace (the strict loopback collector of tests/support, bound there); the
entries must carry the failure of the ISP's technique at the step it strikes, and null where
the path is honest.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from typing import Any

from probe import failures
from tests.lab.addressing import COLLECTOR
from tests.lab.plan import CDN, CDN6
from tests.lab.topology import Lab
from tests.support.census_collector import CensusCollector, check_sweep, serving

DROPPED, REFUSED = "10.200.3.11", "10.200.3.12"  # plan.py: ip_drop and ip_reset on ISP "a"

LIST = [
    (CDN6, "honest.example"),
    (DROPPED, "ip-drop.example"),
    (REFUSED, "ip-rst.example"),
    (CDN, "sni-rst.example"),
]


async def _sweep_from_internet(lab: Lab, collector: CensusCollector) -> Any:
    """Serve the list from the internet namespace while the probe sweeps from probe_a."""
    async with serving(collector, COLLECTOR):
        command = str(pathlib.Path(sys.executable).with_name("surblocage-probe"))
        argv = [
            command, "check", "--sweep", "--json", "--quiet", "--collector", collector.url,
            "--allow-network", lab.allow_network, "--allow-network", "fd00:200::/48",
            "--timeout", "2",
        ]  # fmt: skip
        env = {"SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true"}  # http:// inside the lab
        return await asyncio.to_thread(lab.exec, "probe_a", argv, 120, None, env)


def test_the_sweep_sees_the_isps_drop_and_resets(lab: Lab) -> None:
    collector = CensusCollector()
    collector.addresses = {
        "addresses": [{"ip": ip, "port": 443, "sni": sni} for ip, sni in LIST],
        "generated_at": "2026-12-06T04:00:00Z",
    }
    done = lab.run("internet", _sweep_from_internet, lab, collector)
    assert done.returncode == 0, done.stderr
    (doc,) = [json.loads(line) for line in done.stdout.splitlines()]
    check_sweep(doc, "stdout")
    got = {(e["ip"], e["sni"]): (e["tcp"], e.get("tls"), e.get("tls_neutral"))
           for e in doc["entries"]}  # fmt: skip
    assert got == {
        (CDN6, "honest.example"): (None, None, None),
        (DROPPED, "ip-drop.example"): (failures.TIMEOUT, None, None),
        (REFUSED, "ip-rst.example"): (failures.CONNECTION_REFUSED, None, None),
        (CDN, "sni-rst.example"): (None, failures.CONNECTION_RESET, None),
    }
    assert "tls" not in doc["entries"][1]  # absent, not null: TLS never ran
    assert doc["entries"][3]["tls_neutral"] is None  # ran, and the neutral SNI got through
