"""The census out as rows (`export --what census`): one a (network, blocked address, domain).

Contract (docs/spec.md "The census"): for each address flag the filters choose, every domain on
its address while the flag was in force (the pair seen on the address at or after the flag's
first_seen, or still current; and first seen on it by the flag's close), with the flag's state
and times. Rows are read a chunk of domains at a time, each chunk its own short read: a million
rows never sit in memory, and no transaction stays open for the whole export.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from collector.census import queries
from collector.export import Column, Layout
from collector.store.measurements import rfc3339

CHUNK_DOMAINS = 5000


def _key(name: str) -> Any:
    return lambda row: row.get(name)


COLUMNS = (
    Column("network", _key("network")),
    Column("asn", _key("asn"), "int64"),
    Column("ip", _key("ip"), required=True),
    Column("domain", _key("domain"), required=True),
    Column("rank", _key("rank"), "int64"),
    Column("intended", _key("intended"), "bool", required=True),
    Column("method", _key("method"), required=True),
    Column("state", _key("state"), required=True),
    Column("first_seen", _key("first_seen"), "time", required=True),
    Column("last_seen", _key("last_seen"), "time", required=True),
    Column("closed_at", _key("closed_at"), "time"),
)
CSV_COLUMNS = tuple(c.name for c in COLUMNS)
LAYOUT = Layout(COLUMNS)


def rows(
    store: Any, chosen: Mapping[str, Any], chunk: int = CHUNK_DOMAINS
) -> Iterator[dict[str, Any]]:
    """Yield the census rows of the address flags ``chosen`` (``filters.CENSUS_ADDRESS_FILTERS``),
    flag by flag in (network, address, first seen) order, domains in id order."""
    for flag in store.read(queries.export_flags, chosen):
        times = {
            "first_seen": rfc3339(flag.first_seen),
            "last_seen": rfc3339(flag.last_seen),
            "closed_at": rfc3339(flag.closed_at) if flag.closed_at is not None else None,
        }
        after = 0
        while True:
            found = store.read(queries.flag_domains, flag, after, chunk)
            for _, name, rank, intended in found:
                yield {
                    "network": flag.network,
                    "asn": flag.asn,
                    "ip": flag.ip,
                    "domain": name,
                    "rank": rank,
                    "intended": intended,
                    "method": flag.method,
                    "state": flag.state,
                    **times,
                }
            if len(found) < chunk:
                break
            after = found[-1][0]
