"""The verdict walk on hand-made records: one row a case, each with the verdict of docs/spec.md."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from probe import verdict
from probe.record import (
    EDE,
    Control,
    DNSResult,
    HTTPResult,
    Measurement,
    ProbeInfo,
    Redirect,
    Target,
    TCPResult,
    TLSResult,
    new_id,
)

REAL = "93.184.216.34"
OTHER = "93.184.216.99"
NAME = "www.example.fr"


def dns(
    answers: list[str],
    failure: str | None = None,
    rcode: str = "NOERROR",
    name: str = NAME,
    ede: list[EDE] | None = None,
) -> list[DNSResult]:
    a = DNSResult(
        resolver="r",
        qtype="A",
        failure=failure,
        ms=1,
        rcode=rcode,
        answers=answers,
        name=name,
        ede=ede or [],
    )
    aaaa = DNSResult(
        resolver="r", qtype="AAAA", failure=failure or "dns_no_answer", ms=1, rcode=rcode, name=name
    )
    return [a, aaaa]


def tcp(ip: str = REAL, failure: str | None = None, port: int = 443) -> TCPResult:
    return TCPResult(ip=ip, port=port, failure=failure, ms=1)


def tls(
    ip: str = REAL, failure: str | None = None, sni: str = NAME, neutral: bool = False
) -> TLSResult:
    valid = None if neutral else failure is None
    return TLSResult(
        ip=ip, port=443, sni=sni, failure=failure, ms=1, cert_valid=valid, neutral=neutral
    )


def http(
    status: int | None = 200,
    failure: str | None = None,
    title: str = "Accueil du site",
    length: int = 5000,
    url: str = f"https://{NAME}/",
    **kw: Any,
) -> HTTPResult:
    return HTTPResult(
        url=url, failure=failure, ms=1, status=status, title=title, body_length=length, **kw
    )


def record(url: str = f"https://{NAME}/", **kw: Any) -> Measurement:
    target = Target(service="svc", url=url, domain=NAME, category="general")
    return Measurement(
        id=new_id(),
        probe=ProbeInfo(software="t", asn=3215),
        target=target,
        started_at="2026-11-28T00:00:00Z",
        duration_ms=1,
        **kw,
    )


GOOD_CONTROL = Control(dns=dns([REAL]), tcp=[tcp()], tls=[tls()], http=http())


def ok_https(**changes: Any) -> Measurement:
    base = record(dns=dns([REAL]), tcp=[tcp()], tls=[tls()], http=http())
    return dataclasses.replace(base, **changes)


CASES: list[tuple[str, Measurement, Control | None, tuple[str, str | None, str | None]]] = [
    ("success https", ok_https(), GOOD_CONTROL, ("ok", None, None)),
    ("no control", ok_https(), None, ("inconclusive", None, "no_control")),
    (
        "control failed",
        ok_https(),
        Control(failure="connection_reset"),
        ("inconclusive", None, "control_failed"),
    ),
    (
        "ISP NXDOMAIN",
        record(dns=dns([], "dns_nxdomain_error", "NXDOMAIN")),
        GOOD_CONTROL,
        ("blocked", "dns", "nxdomain"),
    ),
    (
        "ISP SERVFAIL",
        record(dns=dns([], "dns_server_failure", "SERVFAIL")),
        GOOD_CONTROL,
        ("blocked", "dns", "servfail"),
    ),
    (
        "ISP silent drop",
        record(dns=dns([], "generic_timeout_error", "")),
        GOOD_CONTROL,
        ("blocked", "dns", "timeout"),
    ),
    (
        "ISP empty answer",
        record(dns=dns([], "dns_no_answer")),
        GOOD_CONTROL,
        ("blocked", "dns", "no_answer"),
    ),
    (
        "name gone everywhere",
        record(dns=dns([], "dns_nxdomain_error", "NXDOMAIN")),
        Control(dns=dns([], "dns_nxdomain_error", "NXDOMAIN")),
        ("down", None, "dns"),
    ),
    ("loopback answer", record(dns=dns(["127.0.0.1"])), GOOD_CONTROL, ("blocked", "dns", "bogon")),
    (
        "loopback for everybody",
        record(dns=dns(["127.0.0.1"])),
        Control(dns=dns(["127.0.0.1"])),
        ("down", None, "dns_bogon"),
    ),
    (
        "private answer never dialled",
        record(dns=dns(["192.168.1.1"])),
        GOOD_CONTROL,
        ("blocked", "dns", "bogon"),
    ),
    (
        "geo-CDN answer with a valid certificate",
        record(dns=dns([OTHER]), tcp=[tcp(OTHER)], tls=[tls(OTHER)], http=http()),
        GOOD_CONTROL,
        ("ok", None, None),
    ),
    (
        "lying answer, wrong certificate",
        record(dns=dns([OTHER]), tcp=[tcp(OTHER)], tls=[tls(OTHER, "ssl_invalid_hostname")]),
        GOOD_CONTROL,
        ("blocked", "dns", "inconsistent"),
    ),
    (
        "address DROP",
        ok_https(tcp=[tcp(failure="generic_timeout_error")], tls=[], http=None),
        GOOD_CONTROL,
        ("blocked", "tcp_ip", "timeout"),
    ),
    (
        "address RST",
        ok_https(tcp=[tcp(failure="connection_refused")], tls=[], http=None),
        GOOD_CONTROL,
        ("blocked", "tcp_ip", "refused"),
    ),
    (
        "down everywhere",
        ok_https(tcp=[tcp(failure="connection_refused")], tls=[], http=None),
        Control(dns=dns([REAL]), tcp=[tcp(failure="connection_refused")]),
        ("down", None, "tcp"),
    ),
    (
        "SNI RST",
        ok_https(
            tls=[tls(failure="connection_reset"), tls(sni="www.example.com", neutral=True)],
            http=None,
        ),
        GOOD_CONTROL,
        ("blocked", "tls", "reset_sni"),
    ),
    (
        "address blocked at TLS",
        ok_https(
            tls=[
                tls(failure="generic_timeout_error"),
                tls(sni="www.example.com", neutral=True, failure="generic_timeout_error"),
            ],
            http=None,
        ),
        GOOD_CONTROL,
        ("blocked", "tls", "timeout"),
    ),
    (
        "interception",
        ok_https(tls=[tls(failure="ssl_unknown_authority")], http=None),
        GOOD_CONTROL,
        ("blocked", "tls", "mitm"),
    ),
    (
        "expired for everybody",
        ok_https(tls=[tls(failure="ssl_invalid_certificate")], http=None),
        Control(dns=dns([REAL]), tcp=[tcp()], tls=[tls(failure="ssl_invalid_certificate")]),
        ("down", None, "tls"),
    ),
    (
        "reset after the request",
        ok_https(http=http(None, "connection_reset")),
        GOOD_CONTROL,
        ("blocked", "http_failure", "reset"),
    ),
    (
        "451 to the probe only, over https",
        ok_https(http=http(451, title="Unavailable")),
        GOOD_CONTROL,
        ("blocked", "http_diff", "status"),
    ),
    (
        "cleartext page replaced",
        record(
            url=f"http://{NAME}/",
            dns=dns([REAL]),
            tcp=[tcp(port=80)],
            http=http(200, title="Access denied", length=300, url=f"http://{NAME}/"),
        ),
        Control(dns=dns([REAL]), tcp=[tcp(port=80)], http=http(url=f"http://{NAME}/")),
        ("blocked", "http_diff", "body"),
    ),
    (
        "cleartext page with noise",
        record(
            url=f"http://{NAME}/",
            dns=dns([REAL]),
            tcp=[tcp(port=80)],
            http=http(200, length=4800, url=f"http://{NAME}/"),
        ),
        Control(dns=dns([REAL]), tcp=[tcp(port=80)], http=http(url=f"http://{NAME}/")),
        ("ok", None, None),
    ),
    (
        "EDE 16 decides without a control",
        record(dns=dns([], "dns_refused_error", "REFUSED", ede=[EDE(16, "Censored")])),
        None,
        ("blocked", "dns", "refused"),
    ),
]


@pytest.mark.parametrize(("name", "m", "control", "expected"), CASES, ids=[c[0] for c in CASES])
def test_verdict_table(
    name: str, m: Measurement, control: Control | None, expected: tuple[str, str | None, str | None]
) -> None:
    v = verdict.decide(m, control)
    assert (v.status, v.method, v.detail) == expected


def test_redirect_into_sni_blocked_host() -> None:
    hop = "cdn.blocked.fr"
    m = ok_https(
        dns=dns([REAL]) + dns([OTHER], name=hop),
        tcp=[tcp(), tcp(OTHER)],
        tls=[
            tls(),
            tls(OTHER, "connection_reset", sni=hop),
            tls(OTHER, sni="www.example.com", neutral=True),
        ],
        http=http(
            None,
            "connection_reset",
            url=f"https://{hop}/",
            redirects=[Redirect(f"https://{NAME}/", 301, f"https://{hop}/")],
        ),
    )
    c = Control(
        dns=dns([REAL]) + dns([OTHER], name=hop),
        tcp=[tcp(), tcp(OTHER)],
        tls=[tls(), tls(OTHER, sni=hop)],
        http=http(url=f"https://{hop}/"),
    )
    v = verdict.decide(m, c)
    assert (v.status, v.method, v.detail) == ("blocked", "tls", "reset_sni")


@dataclasses.dataclass
class FakeFingerprint:
    name: str
    false_positive: bool = False
    confidence: str = "confirmed"


class OneFingerprint:
    """A fingerprint set that matches one kind only: the seam the verdict reads through."""

    def __init__(self, kind: str, fp: FakeFingerprint) -> None:
        self.kind, self.fp = kind, fp

    def match_dns(self, answers: Any, cnames: Any, asn: Any) -> Any:
        return self.fp if self.kind == "dns" else None

    def match_http(self, status: Any, headers: Any, body: Any, title: Any, asn: Any) -> Any:
        return self.fp if self.kind == "http" else None

    def match_tls(self, subject: Any, issuer: Any) -> Any:
        return self.fp if self.kind == "tls" else None


def test_blockpage_address_decides_without_control() -> None:
    m = record(dns=dns(["145.239.225.117"]), tcp=[tcp("145.239.225.117")])
    v = verdict.decide(m, None, OneFingerprint("dns", FakeFingerprint("fr_anj")))
    assert (v.status, v.method, v.detail, v.blockpage) == (
        "blocked",
        "dns",
        "blockpage_ip",
        "fr_anj",
    )


def test_http_blockpage_fingerprint() -> None:
    v = verdict.decide(ok_https(), GOOD_CONTROL, OneFingerprint("http", FakeFingerprint("x")))
    assert (v.status, v.method, v.blockpage) == ("blocked", "http_blockpage", "x")


def test_false_positive_is_never_a_block() -> None:
    fp = FakeFingerprint("corporate_olfeo", false_positive=True)
    v = verdict.decide(ok_https(), GOOD_CONTROL, OneFingerprint("http", fp))
    assert (v.status, v.detail) == ("inconclusive", "false_positive:corporate_olfeo")


def test_likely_fingerprint_alone_does_not_decide() -> None:
    fp = FakeFingerprint("sfr_nxdomain", confidence="likely")
    v = verdict.decide(ok_https(), None, OneFingerprint("dns", fp))
    assert v.status == "inconclusive"


def test_verdict_survives_the_json_round_trip() -> None:
    """The collector recomputes from the stored record: it must reach the same verdict."""
    for _, m, control, _ in CASES:
        stored = Measurement.from_json(dataclasses.replace(m, control=control).to_json())
        assert verdict.decide(stored) == verdict.decide(m, control)


@pytest.mark.parametrize(
    "bad", [" " + "0" * 31 + "1", "0" * 32, f"{{{new_id()}}}", new_id().upper()]
)
def test_record_id_must_be_a_canonical_uuid(bad: str) -> None:
    from probe.record import MalformedRecord

    d = ok_https().to_dict()
    d["id"] = bad
    with pytest.raises(MalformedRecord, match=r"^id: "):
        Measurement.from_dict(d)


def test_a_dns_answer_leading_to_a_block_page_is_a_dns_block() -> None:
    # the resolver lies to an address that serves a block page: the interference is in DNS
    m = record(
        url=f"http://{NAME}/", dns=dns([OTHER]), tcp=[tcp(OTHER, port=80)],
        http=http(url=f"http://{NAME}/", ip=OTHER, status=451),
    )  # fmt: skip
    fps = OneFingerprint("http", FakeFingerprint("ministry_page"))
    v = verdict.decide(m, GOOD_CONTROL, fps)
    assert (v.status, v.method, v.detail, v.blockpage) == (
        "blocked", "dns", "blockpage_ip", "ministry_page",
    )  # fmt: skip
    # without a control to say the name lives elsewhere, the page is all there is
    v = verdict.decide(m, None, fps)
    assert (v.status, v.method, v.blockpage) == ("blocked", "http_blockpage", "ministry_page")


def test_a_block_page_from_the_real_address_stays_an_http_block() -> None:
    # a transparent proxy answers on the service's own address: DNS told the truth
    m = ok_https(http=http(ip=REAL))
    v = verdict.decide(m, GOOD_CONTROL, OneFingerprint("http", FakeFingerprint("proxy")))
    assert (v.status, v.method, v.detail) == ("blocked", "http_blockpage", None)
