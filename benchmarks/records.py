"""Synthetic schema-1 records for the collector benchmarks: realistic shape, seeded, no network.

Each record is what a probe on a French line would send after one target: DNS A and AAAA through
its ISP resolver, TCP and TLS to the address, an HTTP GET, and the collector's control (the same
steps from its vantage). The mix per record: about 88 % reachable ("ok"), 6 % DNS lies (127.0.0.1
on Orange and Free, NXDOMAIN on SFR and Bouygues), 3 % addresses dropped (tcp_ip), 2 % SNI
resets (tls), 1 % down for everyone. Sizes: see ``record_bytes`` (about 2.6 KB of JSON).
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator

from probe.record import (
    Control,
    DNSResult,
    HTTPResult,
    Measurement,
    ProbeInfo,
    Target,
    TCPResult,
    TLSResult,
    Verdict,
)

NETWORKS = (
    (3215, "Orange", "127.0.0.1"), (12322, "Free", "127.0.0.1"), (15557, "SFR", "nxdomain"),
    (5410, "Bouygues", "nxdomain"), (51207, "Free Mobile", "127.0.0.1"), (8228, "Cegetel", None),
    (21502, "NC Numericable", "nxdomain"), (35540, "Bouygues Mobile", "nxdomain"),
)  # fmt: skip
CATEGORIES = ("iptv_legal", "sports_legal", "vod", "music", "general", "cdn_collateral", "canary")
SERVICES = tuple(f"svc{i:02d}" for i in range(60))
KINDS = (("ok", 88), ("dns", 6), ("tcp_ip", 3), ("tls", 2), ("down", 1))
CERT_ISSUER = "CN=R11,O=Let's Encrypt,C=US"
BODY_HEAD = (
    '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>{t}</title><meta '
    'name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" '
    'href="/assets/main.css"></head><body><header class="site"><nav>'
)
FILLER = '<script src="/_next/static/chunks/{n}.js" async></script><link rel="preload" as="font">'
PROFILES = {"page": (4096, True), "short": (260, True), "lean": (0, False)}


def page_head(title: str, chars: int) -> str | None:
    """Return the first ``chars`` characters of a plausible page (None for 0)."""
    if not chars:
        return None
    text = BODY_HEAD.format(t=title)
    n = 0
    while len(text) < chars:
        text += FILLER.format(n=f"{n:04x}{n * 7919:08x}")
        n += 1
    return text[:chars]


def service_target(service: str) -> Target:
    n = int(service[3:])
    domain = f"www.{service}.example.fr"
    return Target(service, f"https://{domain}/", domain, CATEGORIES[n % len(CATEGORIES)])


def addresses(service: str) -> tuple[str, str]:
    n = int(service[3:])
    return f"198.51.{n // 200}.{n % 200 + 10}", f"2001:db8:{n:x}::10"


def _dns(resolver: str, name: str, v4: list[str] | None, v6: list[str], ms: float) -> list:
    if v4 is None:
        return [
            DNSResult(resolver, q, "dns_nxdomain_error", ms, "NXDOMAIN", name=name)
            for q in ("A", "AAAA")
        ]
    return [
        DNSResult(resolver, "A", None, ms, "NOERROR", v4, name=name),
        DNSResult(resolver, "AAAA", None if v6 else "dns_no_answer", ms, "NOERROR", v6, name=name),
    ]


def _layers(
    target: Target, ips: list[str], kind: str, rng: random.Random, head_chars: int
) -> tuple:
    """Return (tcp, tls, http) as seen by a client for which ``kind`` blocks (or not)."""
    rtt = round(rng.uniform(8, 40), 3)  # the probe keeps ms to the microsecond
    tcp_fail = "generic_timeout_error" if kind in ("tcp_ip", "down") else None
    tcp = [TCPResult(ip, 443, tcp_fail, 5000.0 if tcp_fail else rtt) for ip in ips]
    if tcp_fail:
        return tcp, [], HTTPResult(target.url, tcp_fail, 0.0)
    if kind == "tls":
        tls = [TLSResult(ip, 443, target.domain, "connection_reset", rtt) for ip in ips]
        tls += [TLSResult(ip, 443, "www.example.com", None, 2 * rtt, "TLSv1.3", neutral=True)
                for ip in ips]  # fmt: skip
        return tcp, tls, HTTPResult(target.url, "connection_reset", 0.0)
    subject = f"CN={target.domain}"
    tls = [
        TLSResult(ip, 443, target.domain, None, 2 * rtt, "TLSv1.3", True, False, subject,
                  CERT_ISSUER, f"{rng.getrandbits(256):064x}")
        for ip in ips
    ]  # fmt: skip
    title = f"{target.service} - Regarder en direct et en replay"
    http = HTTPResult(
        target.url, None, round(3 * rtt + rng.uniform(20, 200), 3), 200,
        rng.randint(20_000, 400_000),
        f"{rng.getrandbits(256):064x}", title,
        {"server": "cloudflare", "content-type": "text/html; charset=utf-8", "cf-ray": "8f1"},
        ip=ips[0], body_head=page_head(title, head_chars),
    )  # fmt: skip
    return tcp, tls, http


def make_record(
    rng: random.Random,
    started: datetime.datetime,
    probe_id: str,
    network: int,
    profile: str = "page",
) -> Measurement:
    """Return one record of the mix, measured at ``started`` by a probe of NETWORKS[network]."""
    head_chars, dual_stack = PROFILES[profile]
    asn, name, lie = NETWORKS[network]
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    if kind == "dns" and lie is None:
        kind = "ok"
    target = service_target(rng.choice(SERVICES))
    v4, v6 = addresses(target.service)
    ips, v6s = ([v4, v6], [v6]) if dual_stack else ([v4], [])
    control_kind = "down" if kind == "down" else "ok"
    c_tcp, c_tls, c_http = _layers(target, ips, control_kind, rng, head_chars)
    control = Control(
        _dns("8.8.8.8", target.domain, [v4], v6s, 12.0), c_tcp, c_tls, c_http,
        measured_at=started.isoformat().replace("+00:00", "Z"),
    )  # fmt: skip
    if kind == "dns":
        dns = _dns("192.168.1.1", target.domain, None if lie == "nxdomain" else [str(lie)], [], 4.0)
        tcp, tls, http = [], [], None
    else:
        dns = _dns("192.168.1.1", target.domain, [v4], v6s, round(rng.uniform(2, 30), 3))
        tcp, tls, http = _layers(target, ips, kind, rng, head_chars)
    return Measurement(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        probe=ProbeInfo(probe_id, "surblocage/0.1.0", asn, name, "FR", "192.168.1.1"),
        target=target, started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        duration_ms=round(rng.uniform(80, 900), 3), dns=dns, tcp=tcp, tls=tls, http=http,
        control=control, verdict=Verdict("inconclusive", detail="no_control"),
    )  # fmt: skip


def stream(
    seed: int,
    count: int,
    start: datetime.datetime,
    span: datetime.timedelta,
    probes: int = 500,
    profile: str = "page",
) -> Iterator[Measurement]:
    """Yield ``count`` records in time order over ``span`` from ``start`` by ``probes`` probes."""
    rng = random.Random(seed)
    step = span / max(count, 1)
    for i in range(count):
        p = rng.randrange(probes)
        yield make_record(rng, start + step * i, f"probe-{p:04d}", p % len(NETWORKS), profile)


def record_bytes(profile: str, sample: int = 200) -> float:
    """Return the mean size in bytes of a record's JSON, over ``sample`` records."""
    now = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    records = list(stream(1, sample, now, datetime.timedelta(hours=1), profile=profile))
    return sum(len(m.to_json().encode()) for m in records) / len(records)
