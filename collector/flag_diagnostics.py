"""What the probes' diagnostics say about a flag: counted over the records of its evidence.

A flag's ``diagnostics`` (docs/spec.md, "Diagnostics at the collector") counts probes, not
records: each probe of the flag's evidence speaks through its latest diagnosis (its latest
``skipped`` only when it has none, and not for an ``interval`` skip). A probe that lies in its
diagnostics changes counts by one; a location is given only when at least two probes, and more
than half of those that found one, name the same address (docs/security.md).
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
import sqlalchemy.dialects.postgresql

from collector import diagnostics
from collector.store.schema import measurements
from probe import times

MIN_LOCATION_PROBES = 2
ID_CHUNK = 500  # record ids in one IN (...)


@dataclass(frozen=True)
class Diagnosed:
    """One record's diagnostics, as the aggregate reads them."""

    probe_id: str
    started_at: datetime.datetime
    diagnostics: Mapping[str, Any]


def aggregate(found: Iterable[Diagnosed]) -> dict[str, Any]:
    """Return the flag's ``diagnostics`` from its records' (checked) diagnostics."""
    latest: dict[str, Diagnosed] = {}
    skipped: set[str] = set()
    for d in found:
        if "skipped" in d.diagnostics:
            # "interval": diagnosed less than an interval ago, in a record that may have left
            # the evidence; not a probe that cannot diagnose
            if d.diagnostics["skipped"] != "interval":
                skipped.add(d.probe_id)
        elif d.probe_id not in latest or _later(d, latest[d.probe_id]):
            latest[d.probe_id] = d
    ordered = sorted(latest.values(), key=lambda d: (d.started_at, d.probe_id))
    return {
        "probes": len(latest),
        "skipped": len(skipped - latest.keys()),
        "dns_injection": _results(ordered, "dns_injection", diagnostics.DNS_RESULTS),
        "reset_origin": _results(ordered, "reset_origin", diagnostics.RESET_RESULTS),
        "location": _location(ordered),
    }


def _later(a: Diagnosed, b: Diagnosed) -> bool:
    return (a.started_at, a.probe_id) > (b.started_at, b.probe_id)


def _results(found: Sequence[Diagnosed], part: str, results: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(results, 0)
    for d in found:
        if d.diagnostics.get(part) is not None:
            counts[d.diagnostics[part]["result"]] += 1
    return counts


def _location(found: Sequence[Diagnosed]) -> dict[str, Any] | None:
    """The address most probes located the interference at, if a majority agrees; its hop,
    ASN and network as the latest of those probes gave them."""
    located = [
        d.diagnostics["location"]
        for d in found
        if (d.diagnostics.get("location") or {}).get("result") == "found"
        and d.diagnostics["location"].get("address") is not None
    ]
    if not located:
        return None
    votes = collections.Counter(loc["address"] for loc in located)
    address, n = votes.most_common(1)[0]
    if n < MIN_LOCATION_PROBES or 2 * n <= len(located):
        return None
    latest = [loc for loc in located if loc["address"] == address][-1]
    keep = ("hop", "address", "asn", "network")
    return {**{k: latest.get(k) for k in keep}, "probes": n}


def of_records(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the aggregate of stored records as the query API gives them (the flag page)."""
    return aggregate(
        Diagnosed(r["probe"]["id"], times.parse_rfc3339(r["started_at"]), r["diagnostics"])
        for r in records
        if usable(r.get("diagnostics"))
    )


def read(conn: sa.Connection, ids: Sequence[str]) -> dict[str, Diagnosed]:
    """Return the diagnostics of the records with these ids that have any, by id.

    Only the ``diagnostics`` member leaves the database (a record's document is kilobytes):
    each record is found by its primary key, and only documents that hold a diagnostics
    object are parsed (the LIKE), so that a document stored by an older version, which
    PostgreSQL's json may refuse (NaN), is never parsed.
    """
    out: dict[str, Diagnosed] = {}
    m = measurements.c
    for start in range(0, len(ids), ID_CHUNK):
        chunk = sorted(set(ids[start : start + ID_CHUNK]))
        stmt = sa.select(m.id, m.probe_id, m.started_at, _member(conn.dialect.name)).where(
            m.id.in_(chunk)
        )
        for row in conn.execute(stmt):
            value = _decoded(row.diag)
            if value is not None:
                out[row.id] = Diagnosed(row.probe_id, row.started_at, value)
    return out


def _member(dialect: str) -> Any:
    doc = sa.type_coerce(measurements.c.doc, sa.Text)
    has = doc.like('%"diagnostics":{%')
    if dialect == "postgresql":
        member = sa.cast(doc, sa.dialects.postgresql.JSON)["diagnostics"].astext
    else:
        member = sa.func.json_extract(doc, "$.diagnostics")
    return sa.case((has, member), else_=sa.null()).label("diag")


_DECODER = msgspec.json.Decoder()


def _decoded(text: str | None) -> dict[str, Any] | None:
    """A stored diagnostics object, if it is one the collector accepts today (a document stored
    before the field was checked may hold anything)."""
    if text is None:
        return None
    try:
        value = _DECODER.decode(text)
    except msgspec.DecodeError:
        return None
    return value if usable(value) else None


_LOCATION_TYPES = (("address", str), ("hop", int), ("asn", int), ("network", str))


def usable(value: Any) -> bool:
    """Whether a stored ``diagnostics`` has what the aggregate reads, of the types it reads:
    checked at ingest since the field was added, but a document stored before may hold
    anything. Not ``diagnostics.check`` again: parsing every address was 80% of a read."""
    if not isinstance(value, dict):
        return False
    if "skipped" in value:
        return value["skipped"] in diagnostics.SKIP_REASONS
    for part, results in (
        ("dns_injection", diagnostics.DNS_RESULTS),
        ("reset_origin", diagnostics.RESET_RESULTS),
        ("location", diagnostics.LOCATION_RESULTS),
    ):
        found = value.get(part)
        if found is not None and not (isinstance(found, dict) and found.get("result") in results):
            return False
    location = value.get("location") or {}
    # exact types: JSON decodes to these, and a boolean is no hop
    return all(location.get(k) is None or type(location[k]) is kind for k, kind in _LOCATION_TYPES)


def attach(conn: sa.Connection, flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each flag (as GET /api/v1/flags shows it) its ``diagnostics``, reading the
    diagnostics of every flag's evidence at once (one query per ID_CHUNK records)."""
    ids = sorted({i for f in flags for i in f["evidence"]})
    found = read(conn, ids)
    for f in flags:
        f["diagnostics"] = aggregate(found[i] for i in f["evidence"] if i in found)
    return flags


def scalars(aggregated: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flags export's columns of a flag's ``diagnostics``."""
    a = aggregated or {}
    dns, reset = a.get("dns_injection") or {}, a.get("reset_origin") or {}
    location = a.get("location") or {}
    out: dict[str, Any] = {"diag_probes": a.get("probes"), "diag_skipped": a.get("skipped")}
    out |= {f"diag_dns_injection_{r}": dns.get(r) for r in diagnostics.DNS_RESULTS}
    out |= {f"diag_reset_origin_{r}": reset.get(r) for r in diagnostics.RESET_RESULTS}
    for key in ("hop", "address", "asn", "network", "probes"):
        out[f"diag_location_{key}"] = location.get(key)
    return out
