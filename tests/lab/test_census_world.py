"""The census's lab world on its own (tests/lab/census_world.py): the zone, the servers, the blocks.

Plain dnspython/asyncio/ssl (tests/lab/rawclient.py), no project code but the failure strings:
every name resolves through every ISP's resolver and the public one; every shared address
completes a TLS handshake for its names from an honest network and from the collector's
namespace; ISP a's DROPs time out and its RST refuses; ISP c's rule comes and goes; the down
address is unreachable from everywhere, the collector's namespace included.

Run: flock /tmp/surblocage-lab.lock .venv/bin/python -m pytest -q -x tests/lab/test_census_world.py
"""

from __future__ import annotations

import asyncio
import csv
import pathlib
from collections.abc import Iterator

import pytest

from tests.lab import census_world, rawclient
from tests.lab.census_world import A_DROP, A_RESET, C_DROP, DOMAINS, DOWN, SHARED
from tests.lab.topology import Lab, default_prefix, unusable_reason

DROPPED = ("tcp", "generic_timeout_error")
REFUSED = ("tcp", "connection_refused")
REACHED = (None, None)
NEUTRAL_SNI = "www.example.com"  # the sweep's second SNI (docs/spec.md, "Sweeps")


@pytest.fixture(scope="module")
def world() -> Iterator[Lab]:
    """The census lab: three ISPs of two probes (own prefix: the session lab may be up too)."""
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    with Lab(
        prefix=f"{default_prefix()}c", isps=census_world.ISPS, techniques=census_world.TECHNIQUES
    ) as lab:
        yield lab
        lab.processes.check_alive()


def a_name_on(address: str) -> str:
    return next(d.name for d in DOMAINS if address in d.addresses)


def reach(lab: Lab, role: str, address: str, sni: str | None, verify: bool = True) -> object:
    return lab.run(role, rawclient.reach, address, sni, lab.ca_file, rawclient.DEFAULT, 443, verify)


def test_world_is_a_census_worth_taking() -> None:
    names = [d.name for d in DOMAINS]
    assert len(set(names)) == len(names) >= 200
    assert len(SHARED) >= 20 and DOWN not in SHARED
    for address in SHARED:  # every address is "shared": several indexed names behind it
        assert len(census_world.behind([address])) >= 3, address
    assert any(len(set(d.addresses) & set(A_DROP)) == 2 for d in DOMAINS)  # counted once
    assert census_world.intended(census_world.BLOCKED["a"]) >= 2
    assert census_world.collateral(census_world.BLOCKED["a"]) < len(
        census_world.rows(census_world.BLOCKED["a"])
    )
    assert all(DOWN not in blocked for blocked in census_world.BLOCKED.values())
    assert [d for d in DOMAINS if d.addresses == (DOWN,)], "some names live on the down address"


def test_lists_hold_every_name_once(tmp_path: pathlib.Path) -> None:
    tranco, orders = census_world.write_lists(tmp_path)
    with tranco.open() as f:
        ranked = {row["domain"]: int(row["rank"]) for row in csv.DictReader(f)}
    assert ranked == {d.name: d.rank for d in DOMAINS if d.rank is not None}
    listed = [ln for ln in orders.read_text().splitlines() if ln and not ln.startswith("#")]
    assert listed == [d.name for d in DOMAINS if d.intended]
    assert set(ranked) | set(listed) == {d.name for d in DOMAINS}


async def _resolve_all(server: str) -> dict[str, list[str]]:
    limit = asyncio.Semaphore(16)

    async def one(name: str) -> list[str]:
        async with limit:
            answer = await rawclient.resolve(server, name, timeout_seconds=2.0)
            return sorted(answer.addresses)

    found = await asyncio.gather(*(one(d.name) for d in DOMAINS))
    return {d.name: got for d, got in zip(DOMAINS, found, strict=True)}


@pytest.mark.parametrize("role", ["probe_a1", "probe_b1", "probe_c2", "internet"])
def test_every_name_resolves(world: Lab, role: str) -> None:
    server = world.public_resolver if role == "internet" else world.resolver(role[6])
    expected = {d.name: sorted(d.addresses) for d in DOMAINS}
    got = world.run(role, _resolve_all, server)
    wrong = {n: (got[n], want) for n, want in expected.items() if got[n] != want}
    assert not wrong, f"via {server} from {role}: (got, zone) {dict(list(wrong.items())[:5])}"


@pytest.mark.parametrize("role", ["probe_b1", "internet"])
def test_every_shared_address_serves_its_names(world: Lab, role: str) -> None:
    for address in SHARED:
        assert reach(world, role, address, a_name_on(address)) == REACHED, (role, address)
        assert reach(world, role, address, NEUTRAL_SNI, verify=False) == REACHED, address
    other = next(d.name for d in DOMAINS if SHARED[0] not in d.addresses)
    assert reach(world, role, SHARED[0], other) == REACHED  # one certificate for every name


def test_every_shared_address_answers_http(world: Lab) -> None:
    for address in SHARED:
        name = next(d.name for d in DOMAINS if d.addresses == (address,))
        seen = world.run("probe_b1", rawclient.walk, f"http://{name}/", world.resolver("b"), None)
        assert (seen.step, seen.status, seen.addresses) == (None, 200, [address]), seen
        assert seen.hops[0].headers["x-lab-server"] == address
        assert f"hello from {name}".encode() in seen.hops[0].body


def test_isp_a_drops_three_addresses_and_resets_one(world: Lab) -> None:
    for role in ("probe_a1", "probe_a2"):
        for address in A_DROP:
            before = world.rule_packets("a", address)
            assert reach(world, role, address, a_name_on(address)) == DROPPED, (role, address)
            assert world.rule_packets("a", address) > before, address
        assert reach(world, role, A_RESET, a_name_on(A_RESET)) == REFUSED, role
        for address in (C_DROP, *SHARED[5:]):
            assert reach(world, role, address, a_name_on(address)) == REACHED, (role, address)
    for address in (*A_DROP, A_RESET):  # the blocks are ISP a's only
        assert reach(world, "probe_b2", address, a_name_on(address)) == REACHED, address


def test_isp_c_block_comes_and_goes(world: Lab) -> None:
    name = a_name_on(C_DROP)
    assert census_world.dropping(world, "c", C_DROP)
    assert reach(world, "probe_c1", C_DROP, name) == DROPPED
    census_world.lift(world, "c", C_DROP)
    try:
        assert not census_world.dropping(world, "c", C_DROP)
        for role in ("probe_c1", "probe_c2"):
            assert reach(world, role, C_DROP, name) == REACHED, role
    finally:
        census_world.impose(world, "c", C_DROP)
    assert census_world.dropping(world, "c", C_DROP)
    assert reach(world, "probe_c2", C_DROP, name) == DROPPED


def test_down_address_is_unreachable_from_everywhere(world: Lab) -> None:
    name = next(d.name for d in DOMAINS if d.addresses == (DOWN,))
    answer = world.run("probe_b1", rawclient.resolve, world.resolver("b"), name)
    assert answer.addresses == [DOWN]
    for role in ("probe_a1", "probe_b1", "probe_c1", "internet"):
        assert reach(world, role, DOWN, name) == REFUSED, role
