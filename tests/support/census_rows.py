"""Census rows for tests: indexed names with their ranks, marks and addresses, written directly.

What `domains import` and `domains resolve` would leave (docs/spec.md, "The domain index"): a
name's current addresses are those whose ``last_seen`` equals its ``resolved_at``. Also the
watched services' addresses (``service_addresses``) and a sweep document as a probe sends it.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from collector.store.schema import domain_addresses, domains, service_addresses

RESOLVED_AT = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def insert_names(
    conn: sa.Connection,
    names: Iterable[tuple[str, int | None, bool, Sequence[str]]],
    resolved_at: datetime.datetime = RESOLVED_AT,
) -> None:
    """Insert (name, rank, intended, current addresses) resolved at ``resolved_at``."""
    for name, rank, intended, ips in names:
        result = conn.execute(
            sa.insert(domains).values(
                name=name, rank=rank, intended=intended, added_at=resolved_at,
                resolved_at=resolved_at,
            )
        )  # fmt: skip
        (domain_id,) = result.inserted_primary_key or (None,)
        for ip in ips:
            conn.execute(
                sa.insert(domain_addresses).values(
                    domain_id=domain_id, ip=ip, first_seen=resolved_at, last_seen=resolved_at
                )
            )


def insert_past_address(conn: sa.Connection, name: str, ip: str, seen: datetime.datetime) -> None:
    """Record that ``name`` resolved to ``ip`` at ``seen`` only (no longer current)."""
    domain_id = conn.execute(sa.select(domains.c.id).where(domains.c.name == name)).scalar_one()
    conn.execute(
        sa.insert(domain_addresses).values(
            domain_id=domain_id, ip=ip, first_seen=seen, last_seen=seen
        )
    )


def insert_service_address(
    conn: sa.Connection, service: str, ip: str, seen: datetime.datetime = RESOLVED_AT
) -> None:
    """Record that the control resolved the watched ``service`` to ``ip`` at ``seen``."""
    conn.execute(
        sa.insert(service_addresses).values(service=service, ip=ip, first_seen=seen, last_seen=seen)
    )


def sweep(
    entries: Sequence[dict[str, Any]],
    started_at: datetime.datetime,
    sweep_id: str | None = None,
    **probe: Any,
) -> dict[str, Any]:
    """A sweep document as a probe sends it (no probe id: the token says who)."""
    return {
        "schema": 1,
        "id": sweep_id or str(uuid.uuid4()),
        "probe": {"software": "surblocage/test", **probe},
        "started_at": started_at.isoformat().replace("+00:00", "Z"),
        "duration_ms": 1000,
        "entries": list(entries),
    }


def entry(
    ip: str, look: str = "ok", sni: str = "www.example.org", port: int = 443
) -> dict[str, Any]:
    """An entry whose steps show ``look``: ok, tcp (TCP reset), tls (both handshakes cut),
    sni (the given name's handshake cut, the neutral one through)."""
    steps: dict[str, Any] = {
        "ok": {"tcp": None, "tls": None},
        "tcp": {"tcp": "connection_reset"},
        "tls": {"tcp": None, "tls": "connection_reset", "tls_neutral": "connection_reset"},
        "sni": {"tcp": None, "tls": "connection_reset", "tls_neutral": None},
    }[look]
    return {"ip": ip, "port": port, "sni": sni, **steps, "ms": 12.5}
