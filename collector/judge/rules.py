"""The flag rules: when a flag opens, grows in confidence and closes; pure, no SQL, no HTTP.

Observations in, flags out; the judge (collector/judge/judgement.py) feeds them and keeps the
flags. A flag is a finding per (network, service, method): "blocked on network N by method M
since T, seen by k probes". The rules (DESIGN.md):
- blocked verdicts only count while the control reaches the service (a `down` verdict never does);
- a fingerprinted block opens a flag at once; unconfirmed evidence needs a second probe of the
  network, or the same probe in a second cycle with no peer contradicting it;
- a failure that every measured network shares alike is an outage, never a flag;
- a flag closes when the network's probes reach the service again.
Agreement counts sources, not records (docs/security.md): a probe's records count only once it
has been registered for ``Policy.min_probe_age`` and while it is not revoked, and probes that
registered from one source network (``Standing.source``) count as one probe; a flag needs
``Policy.min_networks`` sources. A flag some revoked probe supported, and that the others no
longer open, closes.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from collector.observation import Observation

# Two records of one probe this far apart belong to two cycles (a cycle is an hour by default,
# busy windows shorten it to minutes: a second look a minute later is a second cycle).
CYCLE_GAP = datetime.timedelta(seconds=60)
MAX_EVIDENCE = 50


@dataclass(frozen=True)
class Flag:
    """A blocking flag of one (network, service, resolver path, method): open, or closed (kept
    as history)."""

    asn: int | None
    network: str | None
    service: str
    category: str
    method: str
    state: str  # "open" or "closed"
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    probes: tuple[str, ...]
    confidence: float
    evidence: tuple[str, ...]
    fingerprinted: bool = False
    closed_at: datetime.datetime | None = None
    networks: int = 1  # distinct source networks of registration among ``probes``
    # whose control the flag rests on: "collector" once the collector's own control vantage
    # reached the service, "probe" while only the probes' controls say it is up
    control: str = "probe"
    # the resolver path it was seen through (collector/judge/paths.py): "isp", the line's own
    resolver: str = "isp"

    @property
    def key(self) -> tuple[int | None, str | None, str, str]:
        return self.asn, self.network, self.service, self.method


@dataclass(frozen=True)
class Standing:
    """What the judge knows of a registered probe: its source network, when it registered,
    whether the operator revoked it."""

    source: str
    registered_at: datetime.datetime | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Policy:
    """How much independent support a flag needs (the `flags.*` configuration keys)."""

    min_probe_age: datetime.timedelta = datetime.timedelta(hours=1)
    min_networks: int = 1


DEFAULT_POLICY = Policy()


class _Vetting:
    """The standing of each probe, as of ``at``: a probe the judge does not know (records
    written without a registration: imports, tests) is its own source, aged, not revoked."""

    def __init__(
        self, standings: Mapping[str, Standing], policy: Policy, at: datetime.datetime | None
    ) -> None:
        self.standings, self.policy, self.at = standings, policy, at

    def of(self, probe_id: str) -> Standing:
        return self.standings.get(probe_id) or Standing(f"probe:{probe_id}")

    def revoked(self, probe_id: str) -> bool:
        standing = self.standings.get(probe_id)  # a probe the judge does not know: not revoked
        return standing is not None and standing.revoked

    def aged(self, probe_id: str) -> bool:
        registered = self.of(probe_id).registered_at
        if registered is None or self.at is None:
            return True
        return registered + self.policy.min_probe_age <= self.at

    def sources(self, probe_ids: Iterable[str]) -> set[str]:
        return {self.of(p).source for p in probe_ids}


def confidence(probes: int, cycles: int, fingerprinted: bool) -> float:
    """Grow towards 1 with every agreeing probe, every further cycle and a fingerprint."""
    weight = probes + 0.5 * max(cycles - 1, 0) + (3 if fingerprinted else 0)
    return round(1 - 0.5**weight, 4)


@dataclass
class _Evidence:
    records: list[Observation] = field(default_factory=list)

    def probes(self) -> set[str]:
        return {o.probe_id for o in self.records}

    def cycles(self) -> int:
        """Count the distinct looks (times at least CYCLE_GAP apart) of the busiest probe."""
        best = 0
        for p in self.probes():
            times = sorted(o.started_at for o in self.records if o.probe_id == p)
            n = 1 + sum(1 for a, b in itertools.pairwise(times) if b - a >= CYCLE_GAP)
            best = max(best, n)
        return best


def evaluate(
    observations: Sequence[Observation],
    current: Iterable[Flag],
    other_networks: Sequence[Observation] = (),
    standings: Mapping[str, Standing] | None = None,
    policy: Policy = DEFAULT_POLICY,
    at: datetime.datetime | None = None,
) -> list[Flag]:
    """Return the flags of one (network, service) after ``observations`` (its recent records).

    ``current`` are the flags stored for that pair; ``other_networks`` the same service's recent
    records on other networks (to tell a network's block from an outage everybody shares);
    ``standings`` the registered probes among them, weighed by ``policy`` as of ``at`` (the
    time of judgement; None: every probe counts as aged).
    """
    vetting = _Vetting(standings or {}, policy, at)
    observations = [o for o in observations if not vetting.revoked(o.probe_id)]
    flags = {f.method: f for f in current}
    latest = _latest_per_probe(observations)
    methods = {o.method for o in observations if o.status == "blocked" and o.method}
    for method in sorted(methods):
        flag = _judge(method, observations, latest, flags.get(method), other_networks, vetting)
        if flag is not None:
            flags[method] = flag
    for method, flag in list(flags.items()):
        if flag.state == "open" and _lifted(flag, latest):
            flags[method] = dataclasses.replace(
                flag, state="closed", closed_at=max(o.started_at for o in latest.values())
            )
        elif flag.state == "open" and any(vetting.revoked(p) for p in flag.probes):
            # its support was a revoked probe's, and the others' evidence does not open it
            closed_at = max(at or flag.last_seen, flag.last_seen)
            flags[method] = dataclasses.replace(flag, state="closed", closed_at=closed_at)
    return sorted(flags.values(), key=lambda f: f.method)


def _judge(
    method: str,
    obs: Sequence[Observation],
    latest: dict[str, Observation],
    flag: Flag | None,
    others: Sequence[Observation],
    vetting: _Vetting,
) -> Flag | None:
    since = flag.closed_at if flag is not None and flag.state == "closed" else None
    blocked = [
        o
        for o in obs
        if o.status == "blocked" and o.method == method and (since is None or o.started_at > since)
    ]
    if not blocked:
        return None
    contradicted = any(
        o.status == "ok" for p, o in latest.items() if p not in {b.probe_id for b in blocked}
    )
    still = [o for o in latest.values() if o.status == "blocked" and o.method == method]
    if not still:
        return None  # the probes no longer see this block
    ev = _Evidence([o for o in blocked if vetting.aged(o.probe_id)])  # the records that count
    sources = vetting.sources(ev.probes())
    fingerprinted = any(o.blockpage for o in ev.records)
    opens = len(sources) >= vetting.policy.min_networks and (
        fingerprinted or len(sources) >= 2 or (ev.cycles() >= 2 and not contradicted)
    )
    if not opens or (not fingerprinted and _everywhere(method, others, vetting)):
        return flag
    first = ev.records[0]
    times = [o.started_at for o in ev.records]
    held = flag if flag is not None and flag.state == "open" else None
    prev_first = held.first_seen if held is not None else None
    return Flag(
        asn=first.asn,
        network=first.network,
        service=first.service,
        category=first.category,
        method=method,
        state="open",
        first_seen=prev_first or min(times),
        last_seen=max(times),
        probes=tuple(sorted(ev.probes())),
        confidence=confidence(len(sources), ev.cycles(), fingerprinted),
        evidence=tuple(o.record_id for o in ev.records[-MAX_EVIDENCE:]),
        fingerprinted=fingerprinted,
        networks=len(sources),
        control=held.control if held is not None else "probe",
    )


def _everywhere(method: str, others: Sequence[Observation], vetting: _Vetting) -> bool:
    """True when every other measured network fails the same way: an outage, not a block.
    Revoked probes' looks are left out here, the one place they are weighed, so that a pair
    that opens nothing does not go through them."""
    latest = _latest_per_network(o for o in others if not vetting.revoked(o.probe_id))
    if not latest:
        return False
    return all(o.status == "blocked" and o.method == method for o in latest.values())


def _lifted(flag: Flag, latest: dict[str, Observation]) -> bool:
    """The network's probes reach the service again: no probe's latest look shows the block."""
    after = [o for o in latest.values() if o.started_at > flag.last_seen]
    if not any(o.status == "ok" for o in after):
        return False
    return not any(o.status == "blocked" and o.method == flag.method for o in latest.values())


def _latest_per_probe(obs: Iterable[Observation]) -> dict[str, Observation]:
    out: dict[str, Observation] = {}
    for o in obs:
        if o.status in ("ok", "blocked") and (
            o.probe_id not in out or o.started_at > out[o.probe_id].started_at
        ):
            out[o.probe_id] = o
    return out


def _latest_per_network(obs: Iterable[Observation]) -> dict[object, Observation]:
    out: dict[object, Observation] = {}
    for o in obs:
        k = o.network_key
        if o.status in ("ok", "blocked") and (k not in out or o.started_at > out[k].started_at):
            out[k] = o
    return out
