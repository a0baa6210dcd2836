"""What one sweep entry says of its address: blocked (and how), reached, or nothing; pure.

docs/spec.md, "Address flags": TCP failing is ``tcp_ip``; TCP connecting and TLS failing with
both the given and the neutral SNI is ``tls``; a failure of the given SNI alone is SNI filtering
of that name, and the address itself is reached (``ok``). An address the collector's own
vantage cannot reach either is ``down``, which the flag rules never count.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from collector.observation import Observation

CATEGORY = "address"  # an address flag's category, as the rules see it
MISSING = object()  # a step not run (absent from the entry)


def status_of(entry: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """Return (status, method) of a stored entry by the probe's word alone: ("blocked",
    "tcp_ip" | "tls") or ("ok", None); None when a step it needs was not run."""
    tcp = entry.get("tcp", MISSING)
    if tcp is MISSING:
        return None
    if tcp is not None:
        return "blocked", "tcp_ip"
    tls = entry.get("tls", MISSING)
    if tls is MISSING:
        return None
    if tls is None:
        return "ok", None
    neutral = entry.get("tls_neutral", MISSING)
    if neutral is MISSING:
        return None
    return ("ok", None) if neutral is None else ("blocked", "tls")


def look(
    sweep: Mapping[str, Any],
    entry: Mapping[str, Any],
    started_at: datetime.datetime,
    vantage_failure: str | object | None = MISSING,
) -> Observation | None:
    """Return what ``entry`` of the stored ``sweep`` (its id, probe id and network given in the
    row) contributes to the address flags; ``vantage_failure`` is the collector's own look at
    the address (a failure string: down; None: reached; MISSING: no look, the probes' word
    stands)."""
    found = status_of(entry)
    if found is None:
        return None
    status, method = found
    if status == "blocked" and isinstance(vantage_failure, str):
        status, method = "down", None
    return Observation(
        record_id=sweep["id"],
        probe_id=sweep["probe_id"],
        asn=sweep["asn"],
        network=sweep["network"],
        service=entry["ip"],
        category=CATEGORY,
        started_at=started_at,
        status=status,
        method=method,
    )
