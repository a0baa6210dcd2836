"""Which resolver path each look of a stored record went through, as the flags name paths.

A record tests one or several resolver paths (docs/spec.md "Resolver paths"); each path's verdict
(``paths[]``) is one look, and the flags are kept per (network, service, resolver path, method).
The path of the line's own resolver is named ``isp`` on every network, whatever the volunteer
named it, so that the ISP's blocking is one flag per network:
- a record with no ``paths`` (one unnamed resolver, probes before paths) is one look, ``isp``;
- a path named ``system`` (the system's resolver, unnamed) is ``isp``;
- the primary path is ``isp`` unless the collector found its resolver asking from another
  network (``probe.resolver_network`` ``other``: a public resolver, a VPN's): unknown counts as
  the ISP's, as one resolver always did. When another path is named ``system``, the whoami
  lookup described that one, not the primary: the primary then keeps its name;
- any other path keeps its name (``google``, ``quad9_doh``).
Two paths of one record that come to one name (a path the volunteer named ``isp``) are one look:
the first. A name a probe sent outside the path name grammar (docs/spec.md: the probe never
makes one; a hostile probe may) names no flag: that path gives no look. Pure: no SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from collector import observation
from collector.observation import Observation
from collector.store.filters import RESOLVER_NAME
from collector.store.schema import ISP

SYSTEM = "system"


def looks(row: Any) -> list[tuple[str, Observation]]:
    """Return the looks of a stored record (a MeasurementRow): (resolver path, observation),
    the primary first."""
    primary = observation.of_measurement(row)
    doc: Mapping[str, Any] = row.doc
    verdicts = doc.get("paths") or []
    if not verdicts:
        return [(ISP, primary)]
    probe = doc.get("probe") or {}
    system_elsewhere = any(v.get("path") == SYSTEM for v in verdicts[1:])
    found: dict[str, Observation] = {}
    for i, v in enumerate(verdicts):
        name = resolver_of(v.get("path"), i == 0, probe.get("resolver_network"), system_elsewhere)
        if name is not None and name not in found:
            found[name] = dataclasses.replace(
                primary, status=v["status"], method=v.get("method"), blockpage=v.get("blockpage")
            )
    return list(found.items())


def resolver_of(
    path: str | None, primary: bool, resolver_network: str | None, system_elsewhere: bool
) -> str | None:
    """Return the flags' name of a path (the rules in this module's docstring), None for a
    name outside the grammar that is not the line's own."""
    if path is None or path == SYSTEM:
        return ISP
    if primary and resolver_network != "other" and not system_elsewhere:
        return ISP
    return path if isinstance(path, str) and RESOLVER_NAME.fullmatch(path) else None
