"""The README's `make run` job (scripts/demo.py), tried as a new user would, inside a lab probe.

The lab keeps every packet inside its namespaces: the demo's collector listens on the probe
namespace's own loopback, the probe measures a small lab watchlist through the ISP's resolver.
"""

from __future__ import annotations

import pathlib
import sys

import yaml

from tests.lab.plan import BY_NAME
from tests.lab.topology import Lab

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_make_run_job_stores_one_record_per_target(lab: Lab, tmp_path: pathlib.Path) -> None:
    names = ["ok_https", "dns_nxdomain", "ip_reset", "sni_reset"]
    urls = [u for n in names for u in BY_NAME[n].urls]
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(
        yaml.safe_dump(
            {
                "services": [
                    {
                        "id": n.replace("_", "-"),
                        "name": n,
                        "category": "general",
                        "urls": list(BY_NAME[n].urls),
                    }
                    for n in names
                ]
            }
        )
    )
    lab_args = f"--ca-file {lab.ca_file} --allow-network {lab.allow_network}"
    env = {
        "SURBLOCAGE_DEMO_DIR": str(tmp_path / "demo"),
        "SURBLOCAGE_DEMO_LISTEN": "127.0.0.1:18080",
        "SURBLOCAGE_DEMO_WATCHLIST": str(watchlist),
        # the system's resolver only: the default list's public resolvers are not in the lab
        "SURBLOCAGE_DEMO_PROBE_ARGS": f"{lab_args} --resolver system --timeout 2 --quiet",
        "SURBLOCAGE_DEMO_COLLECTOR_ARGS": f"{lab_args} --resolver {lab.auth_dns}",
        "SURBLOCAGE_DEMO_EXIT": "1",
    }
    r = lab.exec(
        "probe_b", [sys.executable, str(ROOT / "scripts" / "demo.py")], timeout=120, env=env
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"demo: {len(urls)} records stored:" in r.stdout, r.stdout
    assert (tmp_path / "demo" / "collector.db").exists()
