"""Builders of realistic schema-1 records and rows for the storage tests."""

from __future__ import annotations

import datetime
import uuid

from collector.store import MeasurementRow
from probe import record

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
RECEIVED = datetime.datetime(2026, 3, 1, 21, 0, tzinfo=UTC)


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
    verdict: record.Verdict | None = None,
    title: str = "CANAL+",
) -> record.Measurement:
    """Return a record blocked by DNS (Orange style: 127.0.0.1), unless another verdict is given."""
    when = started_at if isinstance(started_at, str) else started_at.isoformat()
    return record.Measurement(
        id=record_id(n),
        probe=record.ProbeInfo(
            id="declared",
            software="surblocage/0.1.0",
            asn=3215,
            network="Orange",
            cc="FR",
            resolver="192.168.1.1",
        ),
        target=record.Target(service, f"https://{domain}/", domain, category),
        started_at=when,
        duration_ms=412,
        dns=[
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
        tcp=[record.TCPResult("104.16.1.1", 443, None, 20.0)],
        tls=[
            record.TLSResult(
                "104.16.1.1", 443, domain, None, 40.0, version="TLSv1.3", cert_valid=True
            )
        ],
        http=record.HTTPResult(f"https://{domain}/", None, 90.0, status=200, title=title),
        verdict=verdict or record.Verdict("blocked", "dns", "bogon"),
    )


def row(
    n: int = 0,
    *,
    probe_id: str = "probe-a",
    asn: int | None = 3215,
    network: str | None = "Orange",
    received_at: datetime.datetime = RECEIVED,
    probe_verdict: record.Verdict | None = None,
    **fields: object,
) -> MeasurementRow:
    """Return the stored row of ``measurement(n, **fields)``."""
    return MeasurementRow.from_record(
        measurement(n, **fields),  # type: ignore[arg-type]
        probe_id=probe_id,
        asn=asn,
        network=network,
        received_at=received_at,
        probe_verdict=probe_verdict or record.Verdict("blocked", "dns", "bogon"),
    )
