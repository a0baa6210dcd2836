"""Block signatures learned per network and resolver path from the positive controls.

A positive control is a watchlist service with ``dns_only: true``: a name blocked by order. How
a resolver path of a network answers it (an address such as 127.0.0.1 or a block page's, or an
rcode with its Extended DNS Errors) is that path's block signature, once it is seen:
- by at least MIN_PROBES probes of the network, each for at least MIN_CONTROLS positive
  controls, the same answer on the same path (one probe alone, or one name alone, is not
  enough); probes count by their source network of registration, as for the flags, and a
  revoked probe not at all;
- only in records whose control resolved the name to other addresses (an answer the control
  shares, or a name the control cannot resolve, says nothing of blocking).
A signature the control itself starts answering for a positive control (the control gets the
same address, or the same rcode) is retired, for every network, and never learned again.

``observe`` is pure (a stored record in, observations out); ``learn`` writes them and the
signatures they make on a Connection, inside the caller's transaction. Work per record is
bounded: at most MAX_OBSERVATIONS a record.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collector.store.schema import learned_signatures as sig_t
from collector.store.schema import measurements as measurements_t
from collector.store.schema import probes as probes_t
from collector.store.schema import signature_observations as obs_t

MIN_PROBES = 2
MIN_CONTROLS = 2
EVIDENCE_IDS = 20  # record ids kept with a signature: the latest
MAX_OBSERVATIONS = 16  # per record: 16 paths of one answer each, or fewer paths of several
ADDRESSES_PER_ANSWER = 4  # a block answer is one or two addresses; more is not a block page's
MAX_NAME_CHARS = 200  # a path's name (bounded by the record's checks already) or a resolver
UPSERT_ROWS = 500  # rows a statement: 4,500 parameters, under SQLite's and PostgreSQL's limits
RCODES = ("NXDOMAIN", "REFUSED", "SERVFAIL", "NODATA")
KINDS = ("address", "rcode")


@dataclass(frozen=True)
class Observation:
    """One path's answer to one positive control, in one record."""

    resolver: str  # the path's name, or its resolver for a record of one unnamed resolver
    kind: str  # address or rcode
    value: str  # 127.0.0.1, NXDOMAIN, REFUSED+ede:16


def signature_id(asn: int, resolver: str, kind: str, value: str) -> str:
    """Name a signature by what it is: the same id in every database."""
    key = f"{asn}\n{resolver}\n{kind}\n{value}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def observe(doc: Mapping[str, Any]) -> list[Observation]:
    """Return what a record of a positive control teaches: each path's answer to the name,
    when the record's control resolved the name to addresses none of the path's."""
    theirs = control_answers(doc)
    if not theirs:
        return []
    domain = doc.get("target", {}).get("domain")
    out: list[Observation] = []
    for r in doc.get("dns") or []:
        if r.get("qtype") != "A" or r.get("name") not in (None, domain):
            continue
        resolver = r.get("path") or r.get("resolver")
        if not isinstance(resolver, str) or not 0 < len(resolver) <= MAX_NAME_CHARS:
            continue
        out += [Observation(resolver, kind, value) for kind, value in _answer(r, theirs)]
    return list(dict.fromkeys(out))[:MAX_OBSERVATIONS]


def control_answers(doc: Mapping[str, Any]) -> set[str]:
    """The addresses the record's control got for the target's name (empty: none, or failed)."""
    control = doc.get("control")
    if not isinstance(control, Mapping) or control.get("failure") is not None:
        return set()
    domain = doc.get("target", {}).get("domain")
    return {
        a for r in control.get("dns") or [] if r.get("name") in (None, domain)
        for a in r.get("answers") or [] if isinstance(a, str)
    }  # fmt: skip


def control_values(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, value) the record's control answered for the target's name: what retires."""
    control = doc.get("control")
    if not isinstance(control, Mapping) or control.get("failure") is not None:
        return set()
    domain = doc.get("target", {}).get("domain")
    out: set[tuple[str, str]] = set()
    for r in control.get("dns") or []:
        if r.get("qtype") == "A" and r.get("name") in (None, domain):
            out |= set(_answer(r, set()))
    return out


def _answer(r: Mapping[str, Any], theirs: set[str]) -> list[tuple[str, str]]:
    """One A query's answer as signatures: its addresses (unless one is the control's), or its
    rcode with its EDE codes; none for a timeout or an answer out of the vocabulary."""
    answers = [a for a in r.get("answers") or [] if isinstance(a, str)]
    if answers:
        canonical = [_canonical(a) for a in answers[:ADDRESSES_PER_ANSWER]]
        if None in canonical or set(answers) & theirs:
            return []
        return [("address", a) for a in canonical if a is not None]
    rcode = r.get("rcode")
    rcode = "NODATA" if rcode == "NOERROR" else rcode
    if rcode not in RCODES:
        return []
    codes = sorted({e.get("code") for e in r.get("ede") or [] if _ede_code(e)})[:2]
    return [("rcode", rcode + "".join(f"+ede:{c}" for c in codes))]


def _ede_code(e: Any) -> bool:
    code = e.get("code") if isinstance(e, Mapping) else None
    return isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 65535


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class Seen:
    """A stored record of a positive control, as the learning reads it."""

    record_id: str
    probe_id: str
    asn: int | None
    network: str | None
    service: str
    seen_at: datetime.datetime
    doc: Mapping[str, Any]


def recent(
    conn: sa.Connection, controls: Collection[str], since: datetime.datetime, most: int
) -> list[Seen]:
    """Return the stored records of the positive controls received since ``since``, the
    latest ``most``, oldest first (the service index narrows it to the positive controls)."""
    m = measurements_t.c
    q = (
        sa.select(m.id, m.probe_id, m.asn, m.network, m.service, m.started_at, m.doc)
        .where(m.service.in_(sorted(controls)), m.received_at >= since)
        .order_by(m.received_at.desc(), m.id)
        .limit(most)
    )
    return [Seen(r.id, r.probe_id, r.asn, r.network, r.service, r.started_at, r.doc)
            for r in conn.execute(q)][::-1]  # fmt: skip


def learn(conn: sa.Connection, records: Iterable[Seen], controls: Collection[str]) -> int:
    """Keep what the positive controls among ``records`` show, retire what their controls
    answer, and learn the signatures that now pass the threshold; return how many were
    learned or updated. A pass retires first, then keeps, then counts each signature once."""
    mine = [s for s in records if s.service in controls]
    for s in mine:
        _retire(conn, control_values(s.doc), s.seen_at)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}  # by primary key, the latest kept
    touched: dict[str, tuple[Seen, Observation]] = {}
    for s in mine:
        if s.asn is None:
            continue  # a network nobody can name: nothing to apply it to
        for o in observe(s.doc):
            key = (s.asn, o.resolver, o.kind, o.value, s.service, s.probe_id)
            if key not in rows or rows[key]["seen_at"] <= s.seen_at:
                rows[key] = {
                    "asn": s.asn, "resolver": o.resolver, "kind": o.kind, "value": o.value,
                    "service": s.service, "probe_id": s.probe_id, "network": s.network,
                    "record_id": s.record_id, "seen_at": s.seen_at,
                }  # fmt: skip
                touched[signature_id(s.asn, o.resolver, o.kind, o.value)] = (s, o)
    retired = _retired(conn, list(touched))
    # in key order: two collectors sharing PostgreSQL lock rows in the same order
    kept = [r for _, r in sorted(rows.items()) if signature_id(*_key(r)) not in retired]
    for i in range(0, len(kept), UPSERT_ROWS):
        _upsert(
            conn, obs_t, kept[i : i + UPSERT_ROWS],
            ["asn", "resolver", "kind", "value", "service", "probe_id"],
            ["network", "record_id", "seen_at"], newer=obs_t.c.seen_at,
        )  # fmt: skip
    return sum(_recount(conn, sid, s, o) for sid, (s, o) in touched.items() if sid not in retired)


def _key(row: Mapping[str, Any]) -> tuple[int, str, str, str]:
    return row["asn"], row["resolver"], row["kind"], row["value"]


def _retire(conn: sa.Connection, values: set[tuple[str, str]], now: datetime.datetime) -> None:
    for kind, value in values:
        conn.execute(
            sa.update(sig_t)
            .where(sig_t.c.kind == kind, sig_t.c.value == value, sig_t.c.retired_at.is_(None))
            .values(retired_at=now)
        )


def _retired(conn: sa.Connection, ids: list[str]) -> set[str]:
    """The ids among ``ids`` of retired signatures: never learned again."""
    out: set[str] = set()
    for i in range(0, len(ids), UPSERT_ROWS):
        chunk = ids[i : i + UPSERT_ROWS]
        out |= set(
            conn.execute(
                sa.select(sig_t.c.id).where(sig_t.c.id.in_(chunk), sig_t.c.retired_at.isnot(None))
            ).scalars()
        )
    return out


def _recount(conn: sa.Connection, sid: str, s: Seen, o: Observation) -> int:
    """Write the signature of (network, path, answer) if its observations pass the threshold."""
    mine = (
        obs_t.c.asn == s.asn, obs_t.c.resolver == o.resolver, obs_t.c.kind == o.kind,
        obs_t.c.value == o.value,
    )  # fmt: skip
    # a probe counts by its source network of registration, as for the flags (probes registered
    # from one /24 or /48 are one; docs/security.md); a revoked probe does not count
    source = sa.func.coalesce(probes_t.c.source, obs_t.c.probe_id)
    counted = sa.and_(*mine, probes_t.c.revoked_at.is_(None))
    joined = obs_t.outerjoin(probes_t, probes_t.c.id == obs_t.c.probe_id)
    per_source = conn.execute(
        sa.select(source, sa.func.count(sa.distinct(obs_t.c.service)))
        .select_from(joined)
        .where(counted)
        .group_by(source)
    ).all()
    if sum(1 for _, n in per_source if n >= MIN_CONTROLS) < MIN_PROBES:
        return 0
    probes, first, last, controls = conn.execute(
        sa.select(
            sa.func.count(sa.distinct(obs_t.c.probe_id)),
            sa.func.min(obs_t.c.seen_at), sa.func.max(obs_t.c.seen_at),
            sa.func.count(sa.distinct(obs_t.c.service)),
        ).select_from(joined).where(counted)
    ).one()  # fmt: skip
    evidence = conn.execute(
        sa.select(obs_t.c.record_id)
        .select_from(joined)
        .where(counted)
        .order_by(obs_t.c.seen_at.desc(), obs_t.c.record_id)
        .limit(EVIDENCE_IDS)
    ).scalars()
    _upsert(
        conn, sig_t,
        {"id": sid, "asn": s.asn, "network": s.network, "resolver": o.resolver,
         "kind": o.kind, "value": o.value, "probes": probes, "controls": controls,
         "evidence": list(evidence), "first_seen": first, "last_seen": last,
         "retired_at": None},
        ["id"], ["network", "probes", "controls", "evidence", "last_seen"],
    )  # fmt: skip
    return 1


def _upsert(
    conn: sa.Connection, table: sa.Table, values: dict[str, Any] | list[dict[str, Any]],
    keys: list[str], update: list[str], newer: Any = None,
) -> None:  # fmt: skip
    """INSERT, or UPDATE ``update`` of the rows of ``keys`` (only when ``newer`` grows, if
    given): one statement, so that two collectors sharing PostgreSQL never collide."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
    stmt = insert.values(values)
    where = None if newer is None else stmt.excluded[newer.name] >= newer
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}, where=where
    )
    conn.execute(stmt)


def query(
    conn: sa.Connection, asn: int | None = None, network: str | None = None,
    resolver: str | None = None, limit: int = 1000,
) -> list[dict[str, Any]]:  # fmt: skip
    """Return the signatures in force (not retired), latest seen first."""
    q = sa.select(sig_t).where(sig_t.c.retired_at.is_(None))
    for column, value in (("asn", asn), ("network", network), ("resolver", resolver)):
        if value is not None:
            q = q.where(sig_t.c[column] == value)
    q = q.order_by(sig_t.c.last_seen.desc(), sig_t.c.id).limit(limit)
    return [item(dict(row._mapping)) for row in conn.execute(q)]


def item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A signature as GET /api/v1/signatures serves it."""
    return {
        "id": row["id"], "network": row["network"], "asn": row["asn"],
        "resolver": row["resolver"], "kind": row["kind"], "value": row["value"],
        "probes": row["probes"], "controls": row["controls"], "evidence": row["evidence"],
        "first_seen": _rfc3339(row["first_seen"]), "last_seen": _rfc3339(row["last_seen"]),
    }  # fmt: skip


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
