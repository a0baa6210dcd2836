"""Record + control + fingerprints -> verdict (docs/spec.md, verdicts); pure, shared by both.

The walk follows OONI Web Connectivity (ooni-reference.md §1.5) with these differences, each for
fewer false positives or for the French cases OONI cannot confirm:
- a known block signature decides even without a control (ANJ page, a resolver's own EDE 16);
- an answer that differs from the control's is consistent when it shares an address, an ASN, or
  serves a valid certificate for the name (to the probe, or to the control dialling the probe's
  addresses): a geo-CDN answer is not blocking;
- every layer is compared with the control's same layer: a failure the control shares is `down`;
- over HTTPS a status the control does not get (a 451 to the probe, 200 to the control) is
  `http_diff`: OONI hides such server-side refusals behind its HTTPS shortcut (probe#2661).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from probe import failures as f
from probe.addresses import always_anomalous, is_ip, is_public
from probe.record import (
    Control,
    DNSResult,
    HTTPResult,
    Measurement,
    PathVerdict,
    TCPResult,
    TLSResult,
    Verdict,
)

AsnLookup = Callable[[str], int | None]

# Extended DNS Errors by which a resolver says itself that it filters (RFC 8914 §4.16-4.18)
CENSORING_EDE = {15: "blocked", 16: "censored", 17: "filtered"}
BODY_PROPORTION = 0.7  # OONI's bodyProportionFactor
DNS_DETAIL = {
    f.DNS_NXDOMAIN: "nxdomain",
    f.DNS_REFUSED: "refused",
    f.DNS_SERVER_FAILURE: "servfail",
    f.TIMEOUT: "timeout",
    f.DNS_NO_ANSWER: "no_answer",
}
CONN_DETAIL = {
    f.TIMEOUT: "timeout",
    f.CONNECTION_RESET: "reset",
    f.CONNECTION_REFUSED: "refused",
    f.EOF: "eof",
    f.HOST_UNREACHABLE: "unreachable",
    f.NETWORK_UNREACHABLE: "unreachable",
}


class Fingerprints(Protocol):
    """What the verdict needs of probe.fingerprints.FingerprintSet."""

    def match_dns(self, answers: Sequence[str], cnames: Sequence[str], asn: int | None) -> Any: ...
    def match_http(
        self, status: int | None, headers: dict[str, str], body: str, title: str, asn: int | None
    ) -> Any: ...
    def match_tls(self, subject: str, issuer: str) -> Any: ...


def decide(
    m: Measurement,
    control: Control | None = None,
    fingerprints: Fingerprints | None = None,
    asn_of: AsnLookup | None = None,
) -> Verdict:
    """Return the verdict of one record (its primary resolver path); ``control`` defaults to
    the record's own."""
    control = control if control is not None else m.control
    return _judge_path(m, _primary(m), control, fingerprints, asn_of)


def decide_paths(
    m: Measurement,
    control: Control | None = None,
    fingerprints: Fingerprints | None = None,
    asn_of: AsnLookup | None = None,
) -> list[PathVerdict]:
    """Return one verdict per resolver path of the record, the primary first; none for a
    record of one unnamed resolver.

    A path is judged by the same rules on its own DNS answers, with the TCP and TLS results to
    those answers; the HTTP response counts for it only if it came from one of its addresses.
    """
    control = control if control is not None else m.control
    return [_path_verdict(m, name, _judge_path(m, name, control, fingerprints, asn_of))
            for name in _path_names(m)]  # fmt: skip


def judge(
    m: Measurement,
    control: Control | None = None,
    fingerprints: Fingerprints | None = None,
    asn_of: AsnLookup | None = None,
) -> tuple[Verdict, list[PathVerdict]]:
    """Return ``decide``'s verdict and ``decide_paths``' list at once, judging the primary
    path once: it is both the record's verdict and the first path's."""
    control = control if control is not None else m.control
    primary = _primary(m)
    judged = [
        (name, _judge_path(m, name, control, fingerprints, asn_of)) for name in _path_names(m)
    ]
    if judged and judged[0][0] == primary:
        v = judged[0][1]
    else:
        v = _judge_path(m, primary, control, fingerprints, asn_of)
    return v, [_path_verdict(m, name, pv) for name, pv in judged]


def _judge_path(
    m: Measurement,
    name: str | None,
    control: Control | None,
    fingerprints: Fingerprints | None,
    asn_of: AsnLookup | None,
) -> Verdict:
    """One path's verdict, with the signatures that apply to that path."""
    return _decide(_path_view(m, name), control, _for_path(fingerprints, m, name), asn_of)


def _path_verdict(m: Measurement, name: str, v: Verdict) -> PathVerdict:
    first = next(r for r in m.dns if r.path == name)
    return PathVerdict(
        path=name, transport=first.transport if first.transport != "tcp" else "udp",
        resolver=first.resolver, status=v.status, method=v.method, detail=v.detail,
        blockpage=v.blockpage,
    )  # fmt: skip


def _for_path(fps: Fingerprints | None, m: Measurement, name: str | None) -> Any:
    """The signatures that apply to one path: a set that knows paths (``for_path``, learned
    signatures) narrows itself to the path's name, or to the resolver of an unnamed one."""
    narrow = getattr(fps, "for_path", None)
    if narrow is None:
        return fps
    key = name if name is not None else next((r.resolver for r in m.dns if r.path is None), None)
    return narrow(key)


def _primary(m: Measurement) -> str | None:
    """The primary path's name: the probe's, else the first path of the DNS results."""
    if m.probe.path is not None:
        return m.probe.path
    return next((r.path for r in m.dns), None)


def _path_names(m: Measurement) -> list[str]:
    primary = _primary(m)
    names = list(dict.fromkeys(r.path for r in m.dns if r.path is not None))
    return sorted(names, key=lambda n: n != primary)


def _path_view(m: Measurement, name: str | None) -> Measurement:
    """The record as one path saw it: its DNS results (and the primary's for redirect hosts),
    the HTTP response only if it came from one of the path's addresses."""
    primary = _primary(m)
    mine = [r for r in m.dns if r.path == name or r.path is None]
    if name == primary:
        return dataclasses.replace(m, dns=mine) if len(mine) < len(m.dns) else m
    hops = [r for r in m.dns if r.path == primary and r.name != m.target.domain]
    http = m.http
    if http is not None and http.ip not in _answers(mine):
        http = None
    return dataclasses.replace(m, dns=mine + hops, http=http)


def _decide(
    m: Measurement, control: Control | None, fingerprints: Fingerprints | None,
    asn_of: AsnLookup | None,
) -> Verdict:  # fmt: skip
    v = _by_signature(m, fingerprints, control)
    if v is not None:
        return v
    if control is None:
        return Verdict("inconclusive", detail="no_control")
    if control.failure is not None:
        return Verdict("inconclusive", detail="control_failed")
    hosts = _chain_hosts(m)
    consistent = True
    for i, host in enumerate(hosts):
        v, ok = _host_layers(m, control, host, first=i == 0, asn_of=asn_of)
        consistent = consistent and ok
        if v is not None:
            return v
    return _http(m, control, consistent)


def _by_signature(
    m: Measurement, fps: Fingerprints | None, control: Control | None
) -> Verdict | None:
    """Decide from a block signature alone: these need no control (one uses it if present)."""
    a = _dns_for(m.dns, m.target.domain)
    for r in a:
        for e in r.ede:
            if e.code in CENSORING_EDE:
                detail = DNS_DETAIL.get(r.failure or "", "blockpage_ip")
                return Verdict("blocked", "dns", detail, blockpage=f"ede_{e.code}")
    if fps is None:
        return None
    asn = m.probe.asn
    page: Any = None  # matched once: false positives first, block pages after DNS and TLS marks
    if m.http is not None and m.http.failure is None:
        page = fps.match_http(
            m.http.status, m.http.headers, m.http.body_head or "", m.http.title or "", asn
        )
        if page is not None and page.false_positive:
            return Verdict("inconclusive", detail=f"false_positive:{page.name}")
    fp = fps.match_dns(_answers(a), _cnames(a), asn)
    if _decisive(fp):
        detail = "bogon" if all(always_anomalous(x) for x in _answers(a)) else "blockpage_ip"
        return Verdict("blocked", "dns", detail, blockpage=fp.name)
    for t in m.tls:
        if not t.cert_subject:
            continue
        fp = fps.match_tls(t.cert_subject, t.cert_issuer or "")
        if _decisive(fp):
            return Verdict("blocked", "tls", "mitm", blockpage=fp.name)
    if _decisive(page):
        if _page_from_lie(m, a, control):
            return Verdict("blocked", "dns", "blockpage_ip", blockpage=page.name)
        return Verdict("blocked", "http_blockpage", blockpage=page.name)
    return None


def _page_from_lie(m: Measurement, a: list[DNSResult], control: Control | None) -> bool:
    """Tell whether the block page came from an address the resolver answered and the control
    does not: the interference is in DNS, the page only names who answers there."""
    if m.http is None or m.http.ip is None or m.http.redirects or control is None:
        return False
    if control.failure is not None:
        return False
    theirs = _answers(_dns_for(control.dns, m.target.domain))
    return bool(theirs) and m.http.ip in _answers(a) and m.http.ip not in theirs


def _decisive(fp: Any) -> bool:
    return fp is not None and not fp.false_positive and fp.confidence == "confirmed"


def _host_layers(
    m: Measurement, c: Control, host: str, first: bool, asn_of: AsnLookup | None
) -> tuple[Verdict | None, bool]:
    """Walk DNS, TCP, TLS for one host of the redirect chain; return (verdict, consistent)."""
    name = m.target.domain if first else host
    pd, cd = _dns_for(m.dns, name, first), _dns_for(c.dns, name, first)
    if not pd:  # an IP literal or a host never resolved: nothing to compare at the DNS layer
        addrs = [host] if is_ip(host) else []
        consistent = True
    else:
        v, consistent = _dns(m, c, pd, cd, asn_of)
        if v is not None:
            return v, consistent
        addrs = _answers(pd)
    v = _tcp(m, c, addrs)
    if v is None and _scheme(m, host) == "https":
        v = _tls(m, c, host, addrs)
    if v is not None and not consistent:
        return Verdict("blocked", "dns", "inconsistent"), False
    return v, consistent


def _dns(
    m: Measurement, c: Control, pd: list[DNSResult], cd: list[DNSResult], asn_of: AsnLookup | None
) -> tuple[Verdict | None, bool]:
    p_fail, c_fail = _dns_failure(pd), _dns_failure(cd)
    p_addrs, c_addrs = _answers(pd), _answers(cd)
    if p_fail is not None:
        if c_fail is not None or not c_addrs:
            return Verdict("down", detail="dns"), True
        return Verdict("blocked", "dns", DNS_DETAIL.get(p_fail, "failure")), False
    bogons = [a for a in p_addrs if _unroutable(a, m.tcp)]
    if bogons:
        if c_addrs and all(_unroutable(a, c.tcp) for a in c_addrs):
            return Verdict("down", detail="dns_bogon"), True  # misconfigured for everybody
        if not set(bogons) <= set(c_addrs):
            return Verdict("blocked", "dns", "bogon"), False
    if not c_addrs:  # "ghost" answers for a name that exists nowhere (OONI probe#2308)
        return Verdict("blocked", "dns", "inconsistent"), False
    return None, _consistent(m, c, p_addrs, c_addrs, asn_of)


def _consistent(
    m: Measurement, c: Control, p: list[str], ctl: list[str], asn_of: AsnLookup | None
) -> bool:
    """Same addresses, same ASN, or the probe's addresses prove themselves with the certificate."""
    if set(p) & set(ctl):
        return True
    if asn_of is not None:
        p_asns = {asn_of(a) for a in p} - {None}
        if p_asns & ({asn_of(a) for a in ctl} - {None}):
            return True
    valid = {t.ip for t in (*m.tls, *c.tls) if t.cert_valid and not t.neutral}
    return bool(valid & set(p))


def _tcp(m: Measurement, c: Control, addrs: list[str]) -> Verdict | None:
    mine = [t for t in m.tcp if t.ip in addrs]
    if not mine or any(t.failure is None for t in mine):
        return None
    ctl_ok = [t for t in c.tcp if t.failure is None]
    if not ctl_ok:
        return Verdict("down", detail="tcp")
    return Verdict("blocked", "tcp_ip", _conn_detail(mine))


def _tls(m: Measurement, c: Control, host: str, addrs: list[str]) -> Verdict | None:
    mine = [t for t in m.tls if t.ip in addrs and not t.neutral and t.sni == host]
    if not mine or any(t.failure is None for t in mine):
        return None
    ctl_ok = [t for t in c.tls if t.sni == host and t.failure is None and not t.neutral]
    if not ctl_ok:
        return Verdict("down", detail="tls")
    if all(t.failure in f.CERTIFICATE_FAILURES for t in mine):
        return Verdict("blocked", "tls", "mitm")
    detail = _conn_detail(mine)
    neutral_ok = {t.ip for t in m.tls if t.neutral and t.failure is None}
    if neutral_ok & {t.ip for t in mine}:
        detail += "_sni"
    return Verdict("blocked", "tls", detail)


def _http(m: Measurement, c: Control, dns_consistent: bool) -> Verdict:
    h, ch = m.http, c.http
    if h is None:
        return Verdict("ok") if dns_consistent else Verdict("blocked", "dns", "inconsistent")
    if h.failure is not None:
        if ch is None or ch.failure is not None:
            return Verdict("down", detail="http")
        if not dns_consistent:
            return Verdict("blocked", "dns", "inconsistent")
        return Verdict("blocked", "http_failure", CONN_DETAIL.get(h.failure, "failure"))
    if ch is None or ch.failure is not None or ch.status is None:
        return Verdict("ok", detail="control_http_failed")
    diff = _http_diff(h, ch)
    if diff is None:
        return Verdict("ok")
    if not dns_consistent:
        return Verdict("blocked", "dns", "inconsistent")
    return Verdict("blocked", "http_diff", diff)


def _http_diff(h: HTTPResult, ch: HTTPResult) -> str | None:
    """Compare the final responses: status always; body and title only in cleartext (noise)."""
    if h.status != ch.status:
        # a status the control does not get is a difference, over HTTPS too; a control that
        # itself failed server-side tells nothing (OONI LTE: compare only on a 2xx control)
        return "status" if ch.status is not None and 200 <= ch.status < 300 else None
    if h.url.startswith("https://"):
        return None
    if _title_match(h.title or "", ch.title or "") or _body_match(h, ch):
        return None
    return "body"


def _body_match(h: HTTPResult, ch: HTTPResult) -> bool:
    a, b = h.body_length or 0, ch.body_length or 0
    if a <= 0 or b <= 0 or h.body_truncated or ch.body_truncated:
        return True  # undecidable by size: do not call it a difference
    return min(a, b) / max(a, b) > BODY_PROPORTION


def _title_match(a: str, b: str) -> bool:
    """OONI's rule: no word of 5+ letters appears in only one of the two titles."""
    wa = {w for w in a.lower().split() if len(w) >= 5}
    wb = {w for w in b.lower().split() if len(w) >= 5}
    return bool(a or b) and wa == wb


def _chain_hosts(m: Measurement) -> list[str]:
    hosts = [m.target.domain]
    if m.http is not None:
        for r in m.http.redirects:
            nxt = urllib.parse.urlsplit(urllib.parse.urljoin(r.url, r.location)).hostname
            if nxt and nxt not in hosts:
                hosts.append(nxt)
    return hosts


def _scheme(m: Measurement, host: str) -> str:
    if host == m.target.domain:
        return urllib.parse.urlsplit(m.target.url).scheme
    for r in m.http.redirects if m.http else []:
        u = urllib.parse.urlsplit(urllib.parse.urljoin(r.url, r.location))
        if u.hostname == host:
            return u.scheme
    return "http"


def _dns_for(results: list[DNSResult], name: str, first: bool = True) -> list[DNSResult]:
    return [r for r in results if r.name == name or (first and r.name is None)]


def _dns_failure(rs: list[DNSResult]) -> str | None:
    return lookup_failure([(r.qtype, r.failure, bool(r.answers)) for r in rs])


def lookup_failure(queries: Sequence[tuple[str, str | None, bool]]) -> str | None:
    """The failure of one name's lookup, from its queries' (qtype, failure, answered): none when
    any query answered; else the A query's, else the first failure. An AAAA without answer is
    normal (OONI ignores it too), so it never decides while A succeeds."""
    if not queries or any(answered for _, _, answered in queries):
        return None
    by_type = {qtype: failure for qtype, failure, _ in queries}
    first = queries[0][1]
    return by_type.get("A", first) or next((f for _, f, _ in queries if f), None)


def _answers(rs: list[DNSResult]) -> list[str]:
    return list(dict.fromkeys(a for r in rs for a in r.answers))


def _cnames(rs: list[DNSResult]) -> list[str]:
    return list(dict.fromkeys(c for r in rs for c in r.cnames))


def _conn_detail(results: Sequence[TCPResult | TLSResult]) -> str:
    return CONN_DETAIL.get(results[0].failure or "", "failure")


def _unroutable(s: str, tried: Sequence[TCPResult]) -> bool:
    """Loopback, or a non-public address that its measurer was not allowed to dial (a bogon)."""
    if always_anomalous(s):
        return True
    return not is_public(s) and s not in {t.ip for t in tried}
