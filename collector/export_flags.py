"""The columns of stored blocking flags out as CSV or Parquet (`export --what flags`).

Contract: flags arrive as ``Findings.query_flags`` gives them (GET /api/v1/flags' shape, latest
seen first). JSON Lines writes each flag as it is; CSV has the fixed columns ``COLUMNS``, where
``probes`` is a count (``networks`` the count of their distinct source networks) and
``probe_ids`` and ``evidence`` are space-separated ids, then the scalars of the flag's
``diagnostics`` (``diag_probes``...; null for a flag given without); Parquet has
the same columns, typed, with ``probe_ids`` and ``evidence`` as lists of strings.
"""

from __future__ import annotations

from typing import Any

from collector import diagnostics, flag_diagnostics
from collector.export import Column, Layout


def _key(name: str) -> Any:
    return lambda flag: flag.get(name)


def _diagnosed(name: str) -> Any:
    return lambda flag: flag_diagnostics.scalars(flag.get("diagnostics"))[name]


DIAGNOSTICS_COLUMNS = (
    ("diag_probes", "int32"),
    ("diag_skipped", "int32"),
    *((f"diag_dns_injection_{r}", "int32") for r in diagnostics.DNS_RESULTS),
    *((f"diag_reset_origin_{r}", "int32") for r in diagnostics.RESET_RESULTS),
    ("diag_location_hop", "int32"),
    ("diag_location_address", "string"),
    ("diag_location_asn", "int64"),
    ("diag_location_network", "string"),
    ("diag_location_probes", "int32"),
)

COLUMNS = (
    Column("id", _key("id"), required=True),
    Column("asn", _key("asn"), "int64"),
    Column("network", _key("network")),
    Column("service", _key("service"), required=True),
    Column("category", _key("category")),
    Column("method", _key("method"), required=True),
    Column("state", _key("state"), required=True),
    Column("first_seen", _key("first_seen"), "time", required=True),
    Column("last_seen", _key("last_seen"), "time", required=True),
    Column("closed_at", _key("closed_at"), "time"),
    Column("probes", lambda flag: len(flag["probes"]), "int32", required=True),
    Column("probe_ids", lambda flag: list(flag["probes"]), "strings"),
    Column("networks", _key("networks"), "int32"),
    Column("control", _key("control")),
    Column("confidence", _key("confidence"), "float64"),
    Column("evidence", lambda flag: list(flag["evidence"]), "strings"),
    Column("resolver", _key("resolver")),  # the resolver path: isp, the line's own
    Column("scope", _key("scope")),  # resolver: that path blocks on every network
    # what the probes' diagnostics found over the evidence (collector/flag_diagnostics.py)
    *(Column(name, _diagnosed(name), kind) for name, kind in DIAGNOSTICS_COLUMNS),
)
CSV_COLUMNS = tuple(c.name for c in COLUMNS)
LAYOUT = Layout(COLUMNS)
