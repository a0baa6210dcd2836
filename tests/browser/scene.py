"""A collector's findings for the dashboard to show, made by submitting records over HTTP.

The collector recomputes every verdict from the record's evidence, so each record here carries
the evidence of its case (a lying resolver, a cut address, an outage, no control), measured
minutes ago: flags are judged against the clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import itertools
from typing import Any

from probe import record
from tests.collector.harness import Collector

UTC = datetime.UTC
SHARED = "104.16.9.9"  # one CDN address in front of three services
OWN = {"mycanal": "151.101.1.10", "francetv": "151.101.2.20", "deezer": "151.101.3.30"}
SERVICES = {
    "mycanal": ("www.canalplus.com", "iptv_legal"),
    "beinsports": ("www.beinsports.com", "sports_legal"),
    "deezer": ("www.deezer.com", "music"),
    "francetv": ("www.france.tv", "vod"),
    "ligue1": ("www.ligue1.fr", "sports_legal"),
}
HOSTILE = "<img src=x onerror=alert(1)>"
_numbers = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Case:
    """What one record shows: the tested resolver's answers and which steps fail where."""

    answers: tuple[str, ...]
    control_answers: tuple[str, ...]
    cut: bool = False  # the probe's TCP connections time out
    control_cut: bool = False  # the control's too (an outage)
    controlled: bool = True


def dns_lie(service: str) -> Case:
    return Case(("127.0.0.1",), (OWN.get(service, SHARED),))


def reachable(service: str) -> Case:
    address = OWN.get(service, SHARED)
    return Case((address,), (address,))


CDN_CUT = Case((SHARED,), (SHARED,), cut=True)
OUTAGE = Case(("151.101.4.40",), ("151.101.4.40",), cut=True, control_cut=True)


def measurement(service: str, case: Case, minutes_ago: float) -> dict[str, Any]:
    """Return a probe's record of ``service`` showing ``case``, ``minutes_ago`` minutes ago."""
    domain, category = SERVICES[service]
    url = f"https://{domain}/"
    when = datetime.datetime.now(UTC) - datetime.timedelta(minutes=minutes_ago)
    m = record.Measurement(
        id=str(record.new_id()),
        probe=record.ProbeInfo(software="surblocage/0.1.0", cc="FR", resolver="192.168.1.1"),
        target=record.Target(service, url, domain, category),
        started_at=when.isoformat().replace("+00:00", "Z"),
        duration_ms=120,
        dns=[_dns("192.168.1.1", domain, case.answers)],
        tcp=_tcp(case.answers, case.cut),
        tls=[] if case.cut else _tls(case.answers, domain),
        http=_http(url, case.cut),
        control=_control(url, domain, case) if case.controlled else None,
        verdict=None,
    )
    return {**m.to_dict(), "diagnostics": diagnosis(case)}


def diagnosis(case: Case) -> dict[str, Any] | None:
    """What a probe's diagnostics say of a block (docs/spec.md, "Diagnostics at the
    collector"): a lying resolver located at hop 2, a cut address at hop 3; null otherwise."""
    lie, cut = case.answers == ("127.0.0.1",), case.cut and not case.control_cut
    if not (lie or cut):
        return None
    hop = 2 if lie else 3
    location = {
        "result": "found", "trigger": "dns" if lie else "tls", "hop": hop,
        "address": f"198.51.100.{hop}", "asn": None, "network": None,
        "evidence": "the blocked name meets interference there, the control name does not",
    }  # fmt: skip
    dns = {"result": "none", "queried": "198.51.100.53", "answers": []} if lie else None
    return {
        "dns_injection": dns, "reset_origin": None, "location": location,
        "packets": 40, "malformed": 0, "duration_ms": 900,
    }  # fmt: skip


def _dns(resolver: str, domain: str, answers: tuple[str, ...]) -> record.DNSResult:
    return record.DNSResult(resolver, "A", None, 8, "NOERROR", list(answers), name=domain)


def _tcp(addresses: tuple[str, ...], cut: bool) -> list[record.TCPResult]:
    # a probe does not dial a loopback answer; it records the answer as a bogon instead
    dialled = [a for a in addresses if ipaddress.ip_address(a).is_global]
    failure = "generic_timeout_error" if cut else None
    return [record.TCPResult(a, 443, failure, 3000 if cut else 15) for a in dialled]


def _tls(addresses: tuple[str, ...], domain: str) -> list[record.TLSResult]:
    dialled = [a for a in addresses if ipaddress.ip_address(a).is_global]
    return [
        record.TLSResult(a, 443, domain, None, 30, version="TLSv1.3", cert_valid=True)
        for a in dialled
    ]


def _http(url: str, cut: bool) -> record.HTTPResult:
    if cut:
        return record.HTTPResult(url, "generic_timeout_error", 10_000)
    return record.HTTPResult(url, None, 80, status=200, body_length=40_000, title="Accueil")


def _control(url: str, domain: str, case: Case) -> record.Control:
    return record.Control(
        dns=[_dns("9.9.9.9", domain, case.control_answers)],
        tcp=_tcp(case.control_answers, case.control_cut),
        tls=[] if case.control_cut else _tls(case.control_answers, domain),
        http=_http(url, case.control_cut),
    )


async def probe(c: Collector, asn: int, network: str) -> str:
    """Register a probe declaring its network; return its token."""
    _, token = await c.register(asn=asn, network=network)
    return token


async def submit(c: Collector, token: str, *records: dict[str, Any]) -> None:
    status, answer = await c.submit(token, {"records": list(records)})
    assert status == 200, answer


async def populate(c: Collector) -> None:
    """Open flags on three networks (one named by an attacker), a closed flag, collateral on
    Free, and records of every verdict."""
    orange = [await probe(c, 3215, "Orange") for _ in range(2)]
    free = [await probe(c, 12322, "Free") for _ in range(2)]
    sfr = [await probe(c, 15557, "SFR") for _ in range(2)]
    hostile = [await probe(c, 64512, HOSTILE) for _ in range(2)]
    bouygues = await probe(c, 5410, "Bouygues")
    for n, token in enumerate(orange):  # Orange's resolver lies about myCANAL
        await submit(c, token, measurement("mycanal", dns_lie("mycanal"), 40 - n))
    for n, token in enumerate(free):  # Free cuts the CDN address of three services
        cut = [measurement(s, CDN_CUT, 30 - n) for s in ("mycanal", "beinsports", "deezer")]
        await submit(c, token, *cut)
    for n, token in enumerate(hostile):
        await submit(c, token, measurement("francetv", dns_lie("francetv"), 25 - n))
    for n, token in enumerate(sfr):  # SFR blocked Deezer, then lifted it
        await submit(c, token, measurement("deezer", dns_lie("deezer"), 50 - n))
    for n, token in enumerate(sfr):
        await submit(c, token, measurement("deezer", reachable("deezer"), 10 - n))
    await submit(
        c,
        bouygues,
        measurement("mycanal", reachable("mycanal"), 5),
        measurement("ligue1", OUTAGE, 4),
        measurement("francetv", dataclasses.replace(reachable("francetv"), controlled=False), 3),
    )
