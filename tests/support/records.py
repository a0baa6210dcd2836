"""Builders of schema-1 records for the tests: one measurement builder, its presets, stored rows.

A record is number ``n``: the same ``n`` gives the same id in every process, so a test can name
the records it expects without keeping them.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from collector.store import MeasurementRow
from probe import record

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
RECEIVED = datetime.datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
ORANGE = record.ProbeInfo(
    id="declared",
    software="surblocage/0.1.0",
    asn=3215,
    network="Orange",
    cc="FR",
    resolver="192.168.1.1",
)
BLOCKED_DNS = record.Verdict("blocked", "dns", "bogon")


def record_id(n: int) -> str:
    """Return a deterministic record id: the same n gives the same id in every process."""
    return str(uuid.UUID(int=n, version=4))


def measurement(
    n: int = 0,
    *,
    service: str = "mycanal",
    domain: str = "www.canalplus.com",
    category: str = "iptv_legal",
    started_at: datetime.datetime | str = T0,
    title: str = "CANAL+",
    **fields: Any,
) -> record.Measurement:
    """Return record number ``n`` of ``service``: a probe on Orange whose resolver answers
    127.0.0.1 with EDE 16 "Censored" (a DNS block), while the address it dialled answers.

    Any other field of the record given in ``fields`` (probe, dns, tcp, tls, http, control,
    verdict, duration_ms...) replaces its default.
    """
    url = f"https://{domain}/"
    defaults: dict[str, Any] = {
        "id": record_id(n),
        "probe": ORANGE,
        "target": record.Target(service, url, domain, category),
        "started_at": started_at if isinstance(started_at, str) else started_at.isoformat(),
        "duration_ms": 412,
        "dns": [
            record.DNSResult(
                "192.168.1.1",
                "A",
                None,
                12.0,
                rcode="NOERROR",
                answers=["127.0.0.1"],
                ede=[record.EDE(16, "Censored")],
            )
        ],
        "tcp": [record.TCPResult("104.16.1.1", 443, None, 20.0)],
        "tls": [
            record.TLSResult(
                "104.16.1.1", 443, domain, None, 40.0, version="TLSv1.3", cert_valid=True
            )
        ],
        "http": record.HTTPResult(url, None, 90.0, status=200, title=title),
        "verdict": BLOCKED_DNS,
    }
    return record.Measurement(**{**defaults, **fields})


def nxdomain(n: int, category: str = "general") -> record.Measurement:
    """Return record number ``n`` of service s<n>: the resolver answers NXDOMAIN, so nothing
    else is measured (a small record, as the daemon's loopback DNS server makes)."""
    name = f"s{n}.surblocage.test"
    return measurement(
        n,
        service=f"s{n}",
        domain=name,
        category=category,
        started_at="2026-11-28T20:00:00.000Z",
        probe=record.ProbeInfo(software="surblocage/test", resolver="127.0.0.1"),
        duration_ms=12.0,
        dns=[record.DNSResult("127.0.0.1", "A", "dns_nxdomain_error", 3.0, rcode="NXDOMAIN")],
        tcp=[],
        tls=[],
        http=None,
        verdict=record.Verdict("inconclusive"),
    )


def malformed(n: int) -> record.Measurement:
    """Return record ``nxdomain(n)`` with a category outside the schema: a collector answers 400."""
    return nxdomain(n, category="nope")


def row(
    n: int = 0,
    *,
    probe_id: str = "probe-a",
    asn: int | None = 3215,
    network: str | None = "Orange",
    received_at: datetime.datetime = RECEIVED,
    probe_verdict: record.Verdict | None = None,
    **fields: Any,
) -> MeasurementRow:
    """Return the stored row of ``measurement(n, **fields)``."""
    return MeasurementRow.from_record(
        measurement(n, **fields),
        probe_id=probe_id,
        asn=asn,
        network=network,
        received_at=received_at,
        probe_verdict=probe_verdict or BLOCKED_DNS,
    )
