"""The collateral census end to end in the lab with the real programs (docs/spec.md, last section).

The world (tests/lab/census_world.py): 237 indexed names on 24 shared addresses and one address
down for everybody; ISP a ("Orange") drops three addresses and resets one, ISP b ("Free")
blocks nothing, ISP c ("SFR") drops one for two cycles, then the order is lifted. Two probes per
ISP, each a real `surblocage-probe run --once` (declaring its network) submitting its watchlist
records and its sweep to a real `surblocage-collector serve`; the index is loaded by `domains
import` (the ranked list, then the intended one with --intended) and `domains resolve` through
the lab's public resolver. Every expected count is computed from the zone data, and a failure
prints what the census answered next to what was expected.

Run (as root, serialised with the other lab users; about 90 s: the lab 17 s, three cycles):
flock /tmp/surblocage-lab.lock .venv/bin/python -m pytest -q -x tests/lab/test_census_campaign.py
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.browser import chromium, dom
from tests.lab import census_world
from tests.lab.census_world import BLOCKED, C_DROP, DOMAINS, DOWN, SHARED
from tests.lab.topology import Lab, default_prefix, unusable_reason

BIN = pathlib.Path(sys.executable).parent
NETWORKS = {"a": (3215, "Orange"), "b": (12322, "Free"), "c": (15557, "SFR")}
WATCHLIST = {"services": [{"id": "ok", "name": "ok", "category": "control",
                           "urls": ["https://ok.example/"]}]}  # fmt: skip
FETCH = """import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The census lab, its index loaded and resolved, and a collector serving it."""
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("census")
    with Lab(
        prefix=f"{default_prefix()}k", isps=census_world.ISPS, techniques=census_world.TECHNIQUES
    ) as lab:
        world = {"lab": lab, "tmp": tmp, "db": f"sqlite:///{tmp / 'census.db'}"}
        write_configs(world)
        load_index(world)
        lab.spawn(
            "internet", [collector(), "serve", "--config", str(tmp / "collector.yaml")],
            name="collector", ready_tcp=(lab.collector_addr, lab.collector_port), timeout=60,
        )  # fmt: skip
        yield world
        lab.processes.check_alive()


def collector() -> str:
    return str(BIN / "surblocage-collector")


def write_configs(world: dict[str, Any]) -> None:
    lab: Lab = world["lab"]
    tmp: pathlib.Path = world["tmp"]
    (tmp / "watchlist.yaml").write_text(yaml.safe_dump(WATCHLIST))
    config = {
        "listen": f"{lab.collector_addr}:{lab.collector_port}",
        "database": {"url": world["db"]},
        "watchlist": str(tmp / "watchlist.yaml"),
        "control": {"resolver": lab.auth_dns},
        "tls": {"ca_file": lab.ca_file},
        "network": {"allow_networks": [lab.allow_network]},
        # the lab's probes register a moment before they sweep, two to a LAN
        "flags": {"min_probe_age_seconds": 0, "source_prefix_v4": 32, "source_prefix_v6": 128},
        "census": {"resolver": lab.public_resolver, "qps": 1000, "vantage_rate": 200},
    }
    (tmp / "collector.yaml").write_text(yaml.safe_dump(config))
    probe = {
        # a dropped address costs one TCP timeout per probe and cycle: keep it short
        "timeouts": {"dns": 2, "tcp": 2, "tls": 2, "http": 5, "target": 10},
        "census": {"enabled": True, "rate": 200, "max_addresses": 2000},
    }
    (tmp / "probe.yaml").write_text(yaml.safe_dump(probe))


def run_collector(world: dict[str, Any], *args: str) -> str:
    """Run one `surblocage-collector` command in the collector's namespace; return stdout."""
    argv = [collector(), *args]
    done = world["lab"].exec("internet", argv, timeout=300)
    assert done.returncode == 0, f"{' '.join(args[:2])} exited {done.returncode}: {done.stderr}"
    return done.stdout


def load_index(world: dict[str, Any]) -> None:
    """migrate, import the ranked list then the intended one, resolve: the spec's commands."""
    lab: Lab = world["lab"]
    db = world["db"]
    tranco, orders = census_world.write_lists(world["tmp"])
    run_collector(world, "migrate", "--db", db)
    ranked = sum(1 for d in DOMAINS if d.rank is not None)
    said = run_collector(world, "domains", "import", "--db", db, str(tranco))
    assert f"imported {ranked} names ({ranked} new, 0 updated)" in said, said
    targeted = [d for d in DOMAINS if d.intended]
    new = sum(1 for d in targeted if d.rank is None)
    said = run_collector(world, "domains", "import", "--db", db, "--intended", str(orders))
    want = f"imported {len(targeted)} names ({new} new, {len(targeted) - new} updated)"
    assert want in said, f"expected {want!r} in {said!r}"
    run_collector(world, "domains", "resolve", "--db", db, "--resolver", lab.public_resolver,
                  "--qps", "1000", "--allow-network", lab.allow_network)  # fmt: skip


def fetch(world: dict[str, Any], path: str) -> tuple[int, Any]:
    """GET a route of the collector from inside the internet namespace: (status, JSON)."""
    lab: Lab = world["lab"]
    done = lab.exec("internet", [sys.executable, "-c", FETCH, lab.collector_url + path])
    assert done.returncode == 0, f"GET {path}: {done.stderr}"
    status, _, body = done.stdout.partition("\n")
    return int(status), json.loads(body)


def get(world: dict[str, Any], path: str) -> Any:
    status, body = fetch(world, path)
    assert status == 200, f"GET {path} answered {status}: {body}"
    return body


def cycle(world: dict[str, Any]) -> None:
    """Every probe of every ISP runs one cycle at once (watchlist, then sweep) and submits it."""
    lab: Lab = world["lab"]
    tmp: pathlib.Path = world["tmp"]
    env = {**os.environ, "SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true"}

    def one(letter: str, n: int) -> None:
        role = f"probe_{letter}{n}"
        asn, network = NETWORKS[letter]
        argv = [str(BIN / "surblocage-probe"), "run", "--once", "--quiet",
                "--config", str(tmp / "probe.yaml"), "--collector", lab.collector_url,
                "--state-dir", str(tmp / role), "--resolver", lab.resolver(letter),
                "--ca-file", lab.ca_file, "--allow-network", lab.allow_network,
                "--asn", str(asn), "--network", network]  # fmt: skip
        done = lab.exec(role, argv, timeout=180, env=env)
        assert done.returncode == 0, f"{role}: exit {done.returncode}: {done.stderr}"

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(one, x, n) for x in NETWORKS for n in (1, 2)]
        for job in jobs:
            job.result()


def expected_census(letter: str, blocked: tuple[str, ...]) -> dict[str, Any]:
    asn, network = NETWORKS[letter]
    return {
        "asn": asn,
        "network": network,
        "blocked_addresses": len(blocked),
        "collateral_domains": census_world.collateral(blocked),
        "intended_domains": census_world.intended(blocked),
        "watched_services": 0,  # ok.example lives on the lab's CDN, blocked nowhere
    }


def census_now(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return GET /api/v1/census by network name, each item without its `since`."""
    answer = get(world, "/api/v1/census")
    out = {}
    for item in answer["networks"]:
        assert item.get("since") or not item.get("blocked_addresses"), f"no `since` in {item}"
        out[item["network"]] = {k: v for k, v in item.items() if k != "since"}
    return out


def blocked_now(census: dict[str, dict[str, Any]], network: str) -> int:
    return int(census.get(network, {}).get("blocked_addresses", 0))


def flag_items(world: dict[str, Any], network: str, state: str) -> list[dict[str, Any]]:
    query = f"/api/v1/census/addresses?network={network}&state={state}"
    items: list[dict[str, Any]] = get(world, query)["addresses"]
    return items


def flagged(world: dict[str, Any], network: str, state: str) -> set[str]:
    return {item["ip"] for item in flag_items(world, network, state)}


def check_per_address(world: dict[str, Any], letter: str) -> None:
    """Each open address flag of the network counts the names behind its own address."""
    asn, network = NETWORKS[letter]
    got = {
        item["ip"]: {k: item[k] for k in ("asn", "domains", "collateral_domains",
                                          "intended_domains", "services")}
        for item in flag_items(world, network, "open")
    }  # fmt: skip
    want = {
        ip: {
            "asn": asn,
            "domains": len(census_world.behind([ip])),
            "collateral_domains": census_world.collateral([ip]),
            "intended_domains": census_world.intended([ip]),
            "services": [],
        }
        for ip in BLOCKED[letter]
    }
    assert got == want, f"{network}'s open address flags:\n{show(got)}\nexpected\n{show(want)}"


def show(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def test_census_campaign(campaign: dict[str, Any]) -> None:
    world = campaign
    published = {a["ip"] for a in get(world, "/api/v1/addresses")["addresses"]}
    missing = sorted(set(SHARED) - published, key=lambda ip: int(ip.split(".")[-1]))
    assert not missing, f"shared addresses not published to probes: {missing}"
    for ip in (SHARED[-1], DOWN):  # the index alone, before any sweep: names, no network
        body = get(world, f"/api/v1/census/addresses/{ip}?limit=1000")
        names = sorted(d["name"] for d in body["domains"])
        want = sorted(d.name for d in census_world.behind([ip]))
        assert (names, body["networks"]) == (want, []), f"{ip}: {show(body)}\nexpected {want}"

    cycle(world)
    cycle(world)  # ISP c's order holds for two cycles
    census = census_now(world)
    want = {
        "Orange": expected_census("a", BLOCKED["a"]),
        "SFR": expected_census("c", BLOCKED["c"]),
    }
    got = {k: v for k, v in census.items() if v.get("blocked_addresses")}
    assert got == want, f"GET /api/v1/census answered\n{show(census)}\nexpected\n{show(want)}"
    for letter in ("a", "c"):
        check_per_address(world, letter)
    assert flagged(world, "Free", "open") == set(), "ISP b blocks nothing"
    check_address(world)
    check_down(world)
    check_dashboard(world, want)

    census_world.lift(world["lab"], "c", C_DROP)
    cycle(world)  # both of c's probes reach the address again
    census = census_now(world)
    assert blocked_now(census, "SFR") == 0, f"SFR lifted its block; census says {show(census)}"
    assert census.get("Orange") == want["Orange"], f"Orange changed: {show(census)}"
    assert blocked_now(census, "Free") == 0, f"Free blocks nothing: {show(census)}"
    assert flagged(world, "SFR", "closed") == {C_DROP}
    check_history(world)
    check_down(world)
    check_export(world)


def page(world: dict[str, Any], path: str) -> dom.Node:
    """The collector's page as headless Chromium renders it, from inside the lab's internet."""
    lab: Lab = world["lab"]
    profile = world["tmp"] / f"chromium-{len(os.listdir(world['tmp']))}"
    argv = [chromium.executable(), *chromium.FLAGS, f"--user-data-dir={profile}", "--dump-dom",
            lab.collector_url + path]  # fmt: skip
    done = lab.exec("internet", argv, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return dom.parse(done.stdout)


def check_dashboard(world: dict[str, Any], want: dict[str, dict[str, Any]]) -> None:
    """The public dashboard says what the census says: each blocking network's unreachable legal
    domains in the headline (its numbers come from the census's 30-second refresh, hence the
    wait), and each blocked address with the domains behind it on the collateral page."""
    cards: dict[str, str] = {}
    for _ in range(15):
        shown = page(world, "/?lang=en")
        cards = {
            li.attrs["data-network"]: next(
                (s.text() for s in li.find("strong") if s.attrs.get("data-count") == "domains"),
                "",
            )
            for li in shown.by_id("headline").find("li", "card")
        }
        expected = {f"{n} (AS{asn})": str(want[n]["collateral_domains"])
                    for asn, n in NETWORKS.values() if n in want}  # fmt: skip
        if all(cards.get(k) == v for k, v in expected.items()):
            break
        time.sleep(4)
    assert all(cards.get(k) == v for k, v in expected.items()), f"{cards} != {expected}"
    rows = page(world, "/collateral?lang=en").by_id("collateral").find("tr")
    ips = {tr.attrs["data-ip"] for tr in rows if "data-ip" in tr.attrs}
    assert set(BLOCKED["a"]) | set(BLOCKED["c"]) <= ips, ips


def check_address(world: dict[str, Any]) -> None:
    """GET /api/v1/census/addresses/{ip} of one of ISP a's: its names, and a's flag."""
    ip = BLOCKED["a"][0]
    body = get(world, f"/api/v1/census/addresses/{ip}?limit=1000")
    assert body["ip"] == ip
    names = {d["name"]: d["intended"] for d in body["domains"]}
    want = {d.name: d.intended for d in census_world.behind([ip])}
    assert names == want, f"{ip}: domains {show(sorted(names))} != {show(sorted(want))}"
    assert body.get("next_cursor") is None, "every name fits in one page of 1000"
    networks = {(n["network"], n["asn"]): n for n in body["networks"]}
    assert list(networks) == [("Orange", 3215)], f"{ip}: networks {show(body['networks'])}"
    flag = networks[("Orange", 3215)]
    assert (flag["state"], flag["method"], flag["closed_at"]) == ("open", "tcp_ip", None), flag
    assert flag["evidence"] and all(isinstance(e, str) for e in flag["evidence"]), flag


def check_down(world: dict[str, Any]) -> None:
    """The address down for everybody appears in no census answer."""
    for network in ("Orange", "Free", "SFR"):
        for state in ("open", "closed"):
            assert DOWN not in flagged(world, network, state), (network, state)
    status, body = fetch(world, f"/api/v1/census/addresses/{DOWN}")
    assert status in (200, 404), (status, body)
    assert status == 404 or body["networks"] == [], f"{DOWN} is down, not blocked: {show(body)}"


def check_history(world: dict[str, Any]) -> None:
    """SFR's hourly history holds the interval its address was blocked, with its domains."""
    body = get(world, "/api/v1/census/history?network=SFR&step=hour")
    assert body["step"] == "hour"
    points = [p for s in body["series"] if s["network"] == "SFR" for p in s["points"]]
    want = {
        "blocked_addresses": 1,
        "collateral_domains": census_world.collateral([C_DROP]),
        "intended_domains": census_world.intended([C_DROP]),
    }
    seen = [{k: p[k] for k in want} for p in points]
    assert want in seen, f"history of SFR: {show(body)}\nexpected a point with {want}"


def check_export(world: dict[str, Any]) -> None:
    """`export --what census --format jsonl`: one row a (network, blocked address, domain)."""
    out = run_collector(world, "export", "--db", world["db"], "--what", "census",
                        "--format", "jsonl", "--output", "-")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    by_network: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_network.setdefault(row["network"], []).append((row["ip"], row["domain"]))
    orange = by_network.get("Orange", [])
    want = census_world.rows(BLOCKED["a"])
    assert len(orange) == len(set(orange)), "one row a (network, address, domain)"
    assert set(orange) == want, (
        f"Orange rows: {len(orange)}, expected {len(want)}; missing "
        f"{sorted(want - set(orange))[:10]}, extra {sorted(set(orange) - want)[:10]}"
    )
    known = {d.name: d for d in DOMAINS}
    for row in rows:
        d = known[row["domain"]]
        # an intended name's rank is the ranked list's, or none where that list lacks it (the
        # plain intended list carries no rank: whether it clears one is not the census's)
        ranks = (d.rank, None) if d.intended else (d.rank,)
        assert row["intended"] == d.intended and row["rank"] in ranks, (row, d)
        assert row["asn"] == NETWORKS["a" if row["network"] == "Orange" else "c"][0], row
    assert "Free" not in by_network, f"Free blocks nothing: {by_network['Free'][:5]}"
    assert all(ip != DOWN for ips in by_network.values() for ip, _ in ips), "down is not blocked"
    states = {row["state"] for row in rows if row["network"] == "SFR"}
    assert states <= {"closed"}, f"SFR's lifted address: states {states}"
