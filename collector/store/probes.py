"""Registered probes: id, hashed token, declared network, source network, last seen, revocation.

Only the token's hash is stored (hashing is collector.auth's business); no address either: the
source network is an ASN or a keyed hash of a prefix (collector/sources.py). Functions take a
Connection inside the caller's transaction.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.exc
from sqlalchemy.dialects import sqlite

from collector.store.schema import check_asn, check_text, check_time, collector_keys, probes


@dataclass(frozen=True)
class ProbeRow:
    """One registered probe."""

    id: str
    token_hash: str
    created_at: datetime.datetime
    declared_asn: int | None = None
    declared_network: str | None = None
    last_seen_at: datetime.datetime | None = None
    last_asn: int | None = None
    last_network: str | None = None
    token_expires_at: datetime.datetime | None = None
    old_token_hash: str | None = None
    old_token_expires_at: datetime.datetime | None = None
    source: str | None = None
    revoked_at: datetime.datetime | None = None

    def expires_at(self, token_hash: str) -> datetime.datetime | None:
        """When the token hashed ``token_hash`` (this probe's, or its predecessor) expires;
        None for a token without expiry."""
        if token_hash == self.token_hash:
            return self.token_expires_at
        return self.old_token_expires_at


def register(
    conn: sa.Connection,
    probe_id: str,
    token_hash: str,
    declared_asn: int | None,
    declared_network: str | None,
    now: datetime.datetime,
    token_expires_at: datetime.datetime | None = None,
    source: str | None = None,
) -> ProbeRow:
    """Insert a probe; raise ValueError if its id or token hash is already registered."""
    for name, value in (
        ("probe_id", probe_id),
        ("token_hash", token_hash),
        ("declared_network", declared_network),
        ("source", source),
    ):
        check_text(name, value)
    check_asn("declared_asn", declared_asn)
    check_time("now", now)
    row = ProbeRow(
        probe_id,
        token_hash,
        now,
        declared_asn,
        declared_network,
        token_expires_at=token_expires_at,
        source=source,
    )
    values = {
        "source": source,
        "id": probe_id,
        "token_hash": token_hash,
        "created_at": now,
        "declared_asn": declared_asn,
        "declared_network": declared_network,
        "token_expires_at": token_expires_at,
    }
    try:
        conn.execute(sa.insert(probes).values(values))
    except sa.exc.IntegrityError:
        raise ValueError(f"probe_id: {probe_id!r} or its token is already registered") from None
    return row


def by_token_hash(conn: sa.Connection, token_hash: str) -> ProbeRow | None:
    """Return the probe holding this token hash (as its token or its predecessor), or None."""
    check_text("token_hash", token_hash)
    held = sa.or_(probes.c.token_hash == token_hash, probes.c.old_token_hash == token_hash)
    found = conn.execute(sa.select(probes).where(held)).first()
    return _probe(found) if found else None


def renew_token(
    conn: sa.Connection,
    probe_id: str,
    given_hash: str,
    new_hash: str,
    expires_at: datetime.datetime,
    given_expires_at: datetime.datetime | None,
) -> bool:
    """Give a probe a new token; the one given (``given_hash``) stays valid until
    ``given_expires_at``. False if the probe no longer holds ``given_hash``."""
    check_text("token_hash", new_hash)
    check_time("expires_at", expires_at)
    held = sa.or_(probes.c.token_hash == given_hash, probes.c.old_token_hash == given_hash)
    result = conn.execute(
        sa.update(probes)
        .where(probes.c.id == probe_id, held)
        .values(
            token_hash=new_hash,
            token_expires_at=expires_at,
            old_token_hash=given_hash,
            old_token_expires_at=given_expires_at,
        )
    )
    return result.rowcount == 1


def by_id(conn: sa.Connection, probe_id: str) -> ProbeRow | None:
    """Return the probe with this id, or None."""
    check_text("probe_id", probe_id)
    found = conn.execute(sa.select(probes).where(probes.c.id == probe_id)).first()
    return _probe(found) if found else None


def touch(
    conn: sa.Connection,
    probe_id: str,
    asn: int | None,
    network: str | None,
    now: datetime.datetime,
) -> bool:
    """Record that a probe was seen now on this network; False if no such probe."""
    check_text("network", network)
    check_asn("asn", asn)
    check_time("now", now)
    result = conn.execute(
        sa.update(probes)
        .where(probes.c.id == probe_id)
        .values(last_seen_at=now, last_asn=asn, last_network=network)
    )
    return result.rowcount == 1


def revoke(conn: sa.Connection, probe_id: str, now: datetime.datetime) -> bool:
    """Mark a probe revoked at ``now`` (kept if it already was); False if no such probe."""
    check_text("probe_id", probe_id)
    check_time("now", now)
    c = probes.c
    result = conn.execute(
        sa.update(probes)
        .where(c.id == probe_id)
        .values(revoked_at=sa.func.coalesce(c.revoked_at, now))
    )
    return result.rowcount == 1


def of_ids(conn: sa.Connection, probe_ids: Iterable[str]) -> dict[str, ProbeRow]:
    """Return the registered probes among ``probe_ids``, by id."""
    wanted = sorted(set(probe_ids))
    found: dict[str, ProbeRow] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        stmt = sa.select(probes).where(probes.c.id.in_(wanted[start : start + 500]))
        found.update((row.id, _probe(row)) for row in conn.execute(stmt))
    return found


def key(conn: sa.Connection, name: str) -> str:
    """Return the collector's secret ``name``, made (random, 32 bytes) on first use; every
    process of the database gets the same."""
    stmt = sa.select(collector_keys.c.value).where(collector_keys.c.name == name)
    found = conn.execute(stmt).scalar()
    if found is not None:
        return str(found)
    dialect = sqlalchemy.dialects.postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(collector_keys).values(name=name, value=secrets.token_hex(32))
    conn.execute(insert.on_conflict_do_nothing())  # another process may have made it first
    return str(conn.execute(stmt).scalar_one())


def all_probes(conn: sa.Connection) -> list[ProbeRow]:
    """Return every probe, by id."""
    return [_probe(row) for row in conn.execute(sa.select(probes).order_by(probes.c.id))]


def _probe(row: Any) -> ProbeRow:
    return ProbeRow(**row._asdict())
