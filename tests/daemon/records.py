"""Measurements for the daemon tests: small valid records, one a number, and a malformed one."""

from __future__ import annotations

import dataclasses
import uuid

from probe.record import DNSResult, Measurement, ProbeInfo, Target, Verdict


def measurement(n: int, category: str = "general") -> Measurement:
    """Record number ``n``: a DNS NXDOMAIN for service s<n>, with a stable id."""
    name = f"s{n}.surblocage.test"
    return Measurement(
        id=str(uuid.UUID(int=n + 1)),
        probe=ProbeInfo(software="surblocage/test", resolver="127.0.0.1"),
        target=Target(f"s{n}", f"https://{name}/", name, category),
        started_at="2026-11-28T20:00:00.000Z",
        duration_ms=12.0,
        dns=[DNSResult("127.0.0.1", "A", "dns_nxdomain_error", 3.0, rcode="NXDOMAIN")],
        verdict=Verdict("inconclusive"),
    )


def malformed(n: int) -> Measurement:
    """Record number ``n`` with a category outside the schema: the collector answers 400."""
    return dataclasses.replace(measurement(n), target=measurement(n, "nope").target)
