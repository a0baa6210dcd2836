"""Records that open, extend and close flags, and the judge brought up to date as the collector
does: the builders the findings' tests share (judge, collector API, exports, metrics)."""

from __future__ import annotations

import datetime

from collector.judge import Findings
from collector.judge.rules import Flag
from collector.store import MeasurementRow
from probe import record
from tests.support.records import record_id

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
NETWORKS = {"Orange": 3215, "Free": 12322, "SFR": 15557, "Bouygues": 5410}
CATEGORY = {"mycanal": "iptv_legal", "beinsports": "sports_legal", "deezer": "music"}
SHARED = "104.16.9.9"
_numbers = iter(range(1, 10**6))


def look(
    probe: str,
    minutes: float,
    status: str = "blocked",
    method: str | None = "dns",
    *,
    network: str = "Orange",
    service: str = "mycanal",
    ips: tuple[str, ...] = ("104.16.1.1",),
    cut: tuple[str, ...] = (),
    blockpage: str | None = None,
    controlled: bool = True,
) -> MeasurementRow:
    """Return a stored record of ``probe``; ``cut`` are addresses whose TCP connection failed."""
    domain = f"www.{service}.fr"
    n = next(_numbers)
    detail = {"dns": "nxdomain", "tcp_ip": "timeout", "tls": "reset"}.get(method or "")
    verdict = record.Verdict(status, method, detail if status == "blocked" else None, blockpage)
    tcp = [
        record.TCPResult(ip, 443, "generic_timeout_error" if ip in cut else None, 9) for ip in ips
    ]
    control = record.Control(
        dns=[record.DNSResult("9.9.9.9", "A", None, 5, "NOERROR", list(ips), name=domain)]
    )
    m = record.Measurement(
        id=record_id(n),
        probe=record.ProbeInfo(id=probe, software="surblocage/0.1.0", cc="FR"),
        target=record.Target(
            service, f"https://{domain}/", domain, CATEGORY.get(service, "general")
        ),
        started_at=(T0 + datetime.timedelta(minutes=minutes)).isoformat(),
        duration_ms=100,
        dns=[record.DNSResult("192.168.1.1", "A", None, 5, "NOERROR", list(ips), name=domain)],
        tcp=tcp,
        control=control if controlled else None,
        verdict=verdict,
    )
    return MeasurementRow.from_record(
        m,
        probe_id=probe,
        asn=NETWORKS[network],
        network=network,
        received_at=T0 + datetime.timedelta(minutes=minutes, seconds=5),
        probe_verdict=verdict,
    )


def shared(
    probe: str, minutes: float, service: str, blocked: bool = True, **kw: object
) -> MeasurementRow:
    """A record of a service behind the shared address (and one address of its own)."""
    own = {"mycanal": "104.16.1.1", "beinsports": "104.16.2.2", "deezer": "104.16.3.3"}[service]
    if not blocked:
        return look(probe, minutes, "ok", None, service=service, ips=(SHARED, own), **kw)  # type: ignore[arg-type]
    return look(
        probe,
        minutes,
        method="tcp_ip",
        service=service,
        ips=(SHARED, own),
        cut=(SHARED,),
        **kw,  # type: ignore[arg-type]
    )


def ingest(
    findings: Findings, *rows: MeasurementRow, now: datetime.datetime | None = None
) -> list[Flag]:
    """Store one batch and bring the findings up to date, as the collector does; return the
    flags it opened."""
    findings.store.insert_batch(rows)
    last = max(r.started_at for r in rows)
    return findings.judge_pending(now or last + datetime.timedelta(minutes=1)).opened


def summary(findings: Findings, **filters: object) -> list[tuple]:
    """Return the flags matching ``filters`` as sorted (network, service, method, state)."""
    return sorted(
        (f["network"], f["service"], f["method"], f["state"])
        for f in findings.query_flags(**filters)  # type: ignore[arg-type]
    )


def recent(minutes: float) -> float:
    """Minutes after T0 of a time ``minutes`` from an hour ago (the judge goes by the clock)."""
    an_hour_ago = datetime.datetime.now(UTC) - datetime.timedelta(hours=1)
    return (an_hour_ago - T0).total_seconds() / 60 + minutes


def at(minutes: float) -> str:
    """Return the time ``minutes`` after T0 as the API spells it."""
    return (T0 + datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
