"""What each page shows, from the findings: pure functions, no SQL, no HTTP.

Flags come as GET /api/v1/flags gives them (dicts, RFC 3339 times); looks as
(asn, network, service, status, started_at) of the latest decisive look of each pair.
"""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from probe.times import parse_rfc3339

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
# Match evenings, when live-sports blocking starts: shaded on the timeline.
EVENING = (18, 24)
Network = tuple[int | None, str | None]


@dataclasses.dataclass(frozen=True)
class Service:
    id: str
    name: str
    category: str


@dataclasses.dataclass(frozen=True)
class Look:
    """The latest decisive look at a service on a network (from the stored records)."""

    asn: int | None
    network: str | None
    service: str
    category: str
    status: str  # ok, blocked or down
    at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Cell:
    state: str  # blocked, ok, down, nodata
    methods: tuple[str, ...] = ()
    since: str | None = None  # RFC 3339
    link: str | None = None  # the evidence page


@dataclasses.dataclass(frozen=True)
class Row:
    service: Service
    cells: tuple[Cell, ...]


@dataclasses.dataclass(frozen=True)
class Headline:
    network: Network
    services_blocked: int
    domains_unreachable: int | None  # None: no census numbers
    addresses_blocked: int | None


def network_label(n: Network) -> str:
    asn, name = n
    if name and asn is not None:
        return f"{name} (AS{asn})"
    return name or (f"AS{asn}" if asn is not None else "?")


def networks_of(flags: Iterable[Mapping[str, Any]], looks: Iterable[Look]) -> list[Network]:
    """Every network with a flag or a look, ordered by name then AS number."""
    found = {(f["asn"], f["network"]) for f in flags} | {(lk.asn, lk.network) for lk in looks}
    return sorted(found, key=lambda n: ((n[1] or "").lower(), n[0] or 0))


def services_of(
    watched: Sequence[Service], flags: Iterable[Mapping[str, Any]], looks: Iterable[Look]
) -> list[Service]:
    """The watched services, plus any service a flag or look names that the watchlist lacks;
    by category, then name."""
    known = {s.id: s for s in watched}
    for f in flags:
        known.setdefault(f["service"], Service(f["service"], f["service"], f["category"]))
    for lk in looks:
        known.setdefault(lk.service, Service(lk.service, lk.service, lk.category))
    return sorted(known.values(), key=lambda s: (s.category, s.name.lower(), s.id))


def matrix(
    services: Sequence[Service],
    networks: Sequence[Network],
    open_flags: Iterable[Mapping[str, Any]],
    looks: Iterable[Look],
    link: Any,
) -> list[Row]:
    """One row a service, one cell a network: blocked (by which methods, since when, linking
    to the evidence of the flag seen first) where a flag is open, else the latest look's state
    (ok or down), else no data. ``link(flag)`` gives a flag's page."""
    flags_at: dict[tuple[Network, str], list[Mapping[str, Any]]] = {}
    for f in open_flags:
        flags_at.setdefault(((f["asn"], f["network"]), f["service"]), []).append(f)
    look_at = {((lk.asn, lk.network), lk.service): lk for lk in looks}
    rows = []
    for s in services:
        cells = []
        for n in networks:
            found = sorted(flags_at.get((n, s.id), []), key=lambda f: f["first_seen"])
            if found:
                methods = tuple(sorted({f["method"] for f in found}))
                cells.append(Cell("blocked", methods, found[0]["first_seen"], link(found[0])))
                continue
            lk = look_at.get((n, s.id))
            if lk is None:
                cells.append(Cell("nodata"))
            else:
                state = "down" if lk.status == "down" else "ok"
                cells.append(Cell(state, since=rfc3339(lk.at)))
        rows.append(Row(s, tuple(cells)))
    return rows


def headlines(
    networks: Sequence[Network],
    open_flags: Iterable[Mapping[str, Any]],
    census: Mapping[Network, tuple[int, int]] | None = None,
) -> list[Headline]:
    """Per network with something blocked: distinct services blocked, and from the census the
    legal domains unreachable and the addresses blocked (None without census numbers)."""
    blocked: dict[Network, set[str]] = {}
    for f in open_flags:
        blocked.setdefault((f["asn"], f["network"]), set()).add(f["service"])
    out = []
    for n in networks:
        domains, addresses = (census or {}).get(n, (None, None))
        if n in blocked or domains:
            out.append(Headline(n, len(blocked.get(n, ())), domains, addresses))
    return out


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    width: float
    open: bool
    start: str
    end: str | None
    link: str | None


@dataclasses.dataclass(frozen=True)
class Lane:
    label: str
    bars: tuple[Bar, ...]


@dataclasses.dataclass(frozen=True)
class Band:
    x: float
    width: float


@dataclasses.dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    width: float
    lanes: tuple[Lane, ...]
    evenings: tuple[Band, ...]
    ticks: tuple[Tick, ...]


WIDTH = 1000.0


def timeline(
    flags: Iterable[Mapping[str, Any]],
    start: datetime.datetime,
    end: datetime.datetime,
    lane_of: Any,
    link: Any,
) -> Timeline:
    """Blocked intervals over [start, end): one lane per ``lane_of(flag)`` label, a bar per
    flag in force then (an open flag runs to ``end``), on a scale of WIDTH units; the match
    evenings shaded, a tick at each Paris midnight."""
    span = (end - start).total_seconds()

    def x(t: datetime.datetime) -> float:
        return round(max(0.0, min(span, (t - start).total_seconds())) / span * WIDTH, 2)

    lanes: dict[str, list[Bar]] = {}
    for f in sorted(flags, key=lambda f: f["first_seen"]):
        first = parse_rfc3339(f["first_seen"])
        closed = parse_rfc3339(f["closed_at"]) if f.get("closed_at") else None
        stop = closed or end
        if stop < start or first >= end:
            continue
        x0, x1 = x(first), x(stop)
        bar = Bar(x0, max(x1 - x0, 1.0), closed is None, f["first_seen"], f.get("closed_at"),
                  link(f))  # fmt: skip
        lanes.setdefault(lane_of(f), []).append(bar)
    evenings, ticks = [], []
    day = start.astimezone(PARIS).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        dusk = day.replace(hour=EVENING[0])
        midnight = day + datetime.timedelta(days=1)  # wall-clock arithmetic: DST-proof
        if midnight > start and dusk < end:
            evenings.append(Band(x(dusk), round(x(midnight) - x(dusk), 2)))
        if day >= start:
            ticks.append(Tick(x(day), day.strftime("%d/%m")))
        day = midnight
    ordered = tuple(Lane(k, tuple(v)) for k, v in sorted(lanes.items()))
    return Timeline(WIDTH, ordered, tuple(evenings), tuple(ticks))


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
