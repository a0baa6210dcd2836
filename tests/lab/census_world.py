"""The collateral census's world in the lab: shared addresses, an indexed zone, address blocks.

The internet gets 24 shared addresses (10.200.6.1-24, on its lo) served by the lab's one web
server (HTTP and HTTPS, the lab certificate naming every zone name) and one address that is down
for everybody (10.200.6.99: on lo, nothing listens, so the collector's own look fails too).
The authoritative zone holds 237 names spread unevenly over the shared addresses: 225 legal ones
under shared.example (5 of them only on the down address) and 12 that blocking orders target
under orders.example (the list imported with --intended); one name in ten has a second address,
so a domain behind two blocked addresses must be counted once.

The world is a Technique (``TECHNIQUE``: internet side only, planted alike for every ISP) that
``Lab(isps=ISPS, techniques=TECHNIQUES)`` is given; the address blocks are per-ISP middlebox
rules (``ISPS``): ISP a drops three addresses and resets one, ISP b blocks nothing, ISP c drops
one until ``lift`` removes the rule (``impose`` puts it back). The expected census is computed
from the same data (``collateral``, ``intended``, ``rows``), never written by hand.
"""

from __future__ import annotations

import dataclasses
import pathlib
import random
import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tests.lab import planting
from tests.lab.plan import BY_NAME
from tests.lab.processes import LabError
from tests.lab.technique import Expect, IspSpec, Listener, Name, Rule, Technique

if TYPE_CHECKING:
    from tests.lab.topology import Lab

SHARED = tuple(f"10.200.6.{i}" for i in range(1, 25))
DOWN = "10.200.6.99"  # down for everybody: nothing listens there, the collector's look included
COLLATERAL_SUFFIX = "shared.example"
INTENDED_SUFFIX = "orders.example"
COLLATERAL_COUNT = 220
INTENDED_COUNT = 12
ON_DOWN_ONLY = 5  # legal names whose only address is the down one: never counted
SEED = 6  # the spread is pseudo-random but the same on every run

A_DROP = SHARED[:3]  # ISP a drops every packet to these
A_RESET = SHARED[3]  # and answers a SYN to this one with an RST
C_DROP = SHARED[4]  # ISP c drops this one until the lab lifts the rule
BLOCKED = {"a": (*A_DROP, A_RESET), "b": (), "c": (C_DROP,)}


@dataclasses.dataclass(frozen=True)
class Domain:
    """One indexed name: its addresses in the zone, its rank in the ranked list (None: only in
    the intended list), whether an order targets it."""

    name: str
    addresses: tuple[str, ...]
    rank: int | None
    intended: bool = False


def _spread(rng: random.Random, count: int) -> list[tuple[str, ...]]:
    """Give ``count`` names their addresses: three per address first, then Zipf-like weights,
    and a second address for one name in ten."""
    weights = [1 / (k + 1) for k in range(len(SHARED))]
    out: list[tuple[str, ...]] = []
    for i in range(count):
        first = SHARED[i % len(SHARED)] if i < 3 * len(SHARED) else rng.choices(SHARED, weights)[0]
        if i % 10 == 9:
            second = rng.choice([a for a in SHARED if a != first])
            out.append((first, second))
        else:
            out.append((first,))
    return out


def _domains() -> tuple[Domain, ...]:
    rng = random.Random(SEED)
    legal = [
        Domain(f"s{i + 1:03d}.{COLLATERAL_SUFFIX}", addresses, rank=i + 1)
        for i, addresses in enumerate(_spread(rng, COLLATERAL_COUNT))
    ]
    # by hand, the cases a census gets wrong: one name behind two blocked addresses of ISP a,
    # one behind a blocked and an open address, one behind the down and an open address
    legal[0] = dataclasses.replace(legal[0], addresses=(A_DROP[0], A_DROP[1]))
    legal[1] = dataclasses.replace(legal[1], addresses=(A_RESET, SHARED[10]))
    legal[2] = dataclasses.replace(legal[2], addresses=(DOWN, SHARED[11]))
    legal += [
        Domain(f"gone{i + 1}.{COLLATERAL_SUFFIX}", (DOWN,), rank=COLLATERAL_COUNT + i + 1)
        for i in range(ON_DOWN_ONLY)
    ]
    # every other intended name is in the ranked list too, after the legal ones
    intended = [
        Domain(f"o{i + 1:02d}.{INTENDED_SUFFIX}", addresses, rank=None, intended=True)
        for i, addresses in enumerate(_spread(rng, INTENDED_COUNT))
    ]
    for j in range(0, INTENDED_COUNT, 2):
        intended[j] = dataclasses.replace(intended[j], rank=len(legal) + j // 2 + 1)
    intended[0] = dataclasses.replace(intended[0], addresses=(A_DROP[0],))
    intended[1] = dataclasses.replace(intended[1], addresses=(A_DROP[2], A_RESET))
    intended[2] = dataclasses.replace(intended[2], addresses=(C_DROP,))
    return (*legal, *intended)


DOMAINS = _domains()

TECHNIQUE = Technique(
    "census_world",
    checks=(),
    expect=Expect("ok", why="internet side only: what a network blocks is in ISPS"),
    zone=tuple(Name(d.name, d.addresses) for d in DOMAINS),
    listeners=(Listener(DOWN, "none"),),
    notes="the collateral census's shared addresses and indexed names (tests/lab/census_world.py)",
)
# ok.example is the watchlist's one honest service; the lab's readiness check resolves it too
TECHNIQUES = (BY_NAME["ok_https"], TECHNIQUE)
ISPS = (
    IspSpec("a", probes=2, techniques=(), rules=(
        *(Rule("drop", a, why="an order against an address") for a in A_DROP),
        Rule("reset", A_RESET, why="an order carried out with RSTs"),
    )),
    IspSpec("b", probes=2, techniques=()),
    IspSpec("c", probes=2, techniques=(), rules=(Rule("drop", C_DROP, why="lifted later"),)),
)  # fmt: skip


# -- what the census must say, from the zone data -------------------------------------------
def behind(addresses: Iterable[str]) -> list[Domain]:
    """Return the indexed names one of whose addresses is among ``addresses``."""
    chosen = set(addresses)
    return [d for d in DOMAINS if chosen & set(d.addresses)]


def collateral(addresses: Iterable[str]) -> int:
    """Count the distinct legal names behind the addresses (docs/spec.md collateral_domains)."""
    return sum(1 for d in behind(addresses) if not d.intended)


def intended(addresses: Iterable[str]) -> int:
    """Count the distinct names marked intended behind the addresses (intended_domains)."""
    return sum(1 for d in behind(addresses) if d.intended)


def rows(addresses: Iterable[str]) -> set[tuple[str, str]]:
    """Return the (blocked address, domain) pairs: the census export's rows for a network."""
    chosen = set(addresses)
    return {(a, d.name) for d in DOMAINS for a in d.addresses if a in chosen}


# -- the lists `surblocage-collector domains import` reads ------------------------------------
def write_lists(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the ranked list (Tranco CSV, with a header) and the intended list (one name a
    line, a comment and a blank line); return their paths. Half the intended names are in the
    ranked list too: importing the intended list must mark them, not add them twice."""
    ranked = sorted((d for d in DOMAINS if d.rank is not None), key=lambda d: d.rank or 0)
    lines = ["rank,domain", *(f"{d.rank},{d.name}" for d in ranked)]
    tranco, orders = directory / "tranco.csv", directory / "intended.txt"
    tranco.write_text("\n".join(lines) + "\n")
    names = [d.name for d in DOMAINS if d.intended]
    orders.write_text("# names targeted by blocking orders (lab)\n\n" + "\n".join(names) + "\n")
    return tranco, orders


# -- blocks that come and go -------------------------------------------------------------------
def _rule_argv(lab: Lab, letter: str, address: str) -> list[str]:
    """Return the ISP's planted DROP rule to ``address`` as iptables arguments after the verb."""
    _, line = planting.rule_lines(Rule("drop", address), lab.isp(letter))
    return shlex.split(line)[1:]  # without "-A"


def lift(lab: Lab, letter: str, address: str) -> None:
    """Remove ISP ``letter``'s DROP rule to ``address`` (the order is lifted)."""
    _iptables(lab, letter, "-D", address)


def impose(lab: Lab, letter: str, address: str) -> None:
    """Put ISP ``letter``'s DROP rule to ``address`` back (or in place for the first time)."""
    _iptables(lab, letter, "-A", address)


def _iptables(lab: Lab, letter: str, verb: str, address: str) -> None:
    argv = ["iptables", verb, *_rule_argv(lab, letter, address)]
    done = lab.exec(f"router_{letter}", argv)
    if done.returncode != 0:
        raise LabError(f"router_{letter}: {' '.join(argv)}: {done.stderr.strip()}")


def dropping(lab: Lab, letter: str, address: str) -> bool:
    """Tell whether ISP ``letter``'s router holds a DROP rule to ``address`` now."""
    argv = ["iptables", "-C", *_rule_argv(lab, letter, address)]
    return lab.exec(f"router_{letter}", argv).returncode == 0
