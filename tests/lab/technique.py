"""The vocabulary of the lab's plan: a Technique and the parts it plants (data, no behaviour).

A Technique is self-contained: its own domain names, the zone entries the authoritative server
holds for them, what an ISP's resolver lies about, the middlebox rules and ISP servers it needs,
how the internet web server answers, and what a probe should see (``checks``, raw per URL) and
conclude (``expect``, a docs/spec.md verdict). Parts are "ISP side" (planted only on the ISPs that
select the technique) or "internet side" (the same for every ISP and for the control).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# stands for the block-page address of whichever ISP the policy is planted on
BLOCKPAGE = "@blockpage"

RESOLVER_ACTIONS = ("nxdomain", "refused", "refused_ede", "servfail", "empty", "drop")
RULE_KINDS = (
    "drop", "reset", "sni_reset", "sni_drop", "host_reset", "host_drop", "loss", "proxy",
    "intercept",
)  # fmt: skip
STEPS = ("dns", "tcp", "tls", "http")


@dataclasses.dataclass(frozen=True)
class Name:
    """An authoritative zone entry (a name that does not appear anywhere is NXDOMAIN)."""

    domain: str
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    slow_seconds: float = 0.0  # the authoritative server waits this long before answering


@dataclasses.dataclass(frozen=True)
class Listener:
    """How an internet address serves ports 80 and 443 (every zone address is served by default).

    cert: "lab" (one lab-CA certificate for every lab name), "wrong_name" (lab CA, another
    name), "other_ca" (a CA the probe does not trust), or "none" (nothing listens: RST).
    """

    addr: str
    cert: str = "lab"


@dataclasses.dataclass(frozen=True)
class Site:
    """How the internet web server answers one Host and path (other paths: 200 "hello")."""

    host: str
    path: str = "/"
    status: int = 200
    body: str | None = None  # default: "hello from {host}"
    title: str | None = None
    location: str | None = None  # a redirect target (use with status 301/302)
    delay_seconds: float = 0.0
    body_bytes: int = 0  # > 0: a body of exactly this many bytes
    probe_status: int | None = None  # answered instead of status to sources in the probe LANs


@dataclasses.dataclass(frozen=True)
class Rule:
    """One middlebox rule in an ISP router, applied to traffic from its probe LAN.

    drop/reset: every TCP packet (drop: every packet) to ``addr``; sni_*: a TLS ClientHello to
    :443 containing ``match``; host_*: an HTTP request to :80 containing "Host: <match>";
    loss: drop packets to ``addr`` with ``probability``; proxy: DNAT :80 of ``addr`` to the ISP's
    transparent proxy; intercept: DNAT :443 of ``addr`` to the ISP's self-signed interceptor.
    """

    kind: str
    addr: str | None = None
    match: str | None = None
    probability: float = 0.0
    why: str = ""


@dataclasses.dataclass(frozen=True)
class Expect:
    """The verdict (docs/spec.md) a probe on an ISP where the technique is planted should reach.

    ``detail`` and ``blockpage`` None mean "not specified": any value matches.
    """

    status: str
    method: str | None = None
    detail: str | None = None
    blockpage: str | None = None  # fingerprint name (tests/lab/fingerprints.yaml)
    why: str = ""

    def matches(self, verdict: Mapping[str, object] | None) -> bool:
        """Tell whether a record's verdict (its JSON object) is the one expected."""
        if not verdict:
            return False
        if (verdict.get("status"), verdict.get("method")) != (self.status, self.method):
            return False
        if self.detail is not None and verdict.get("detail") != self.detail:
            return False
        return self.blockpage is None or verdict.get("blockpage") == self.blockpage


@dataclasses.dataclass(frozen=True)
class Check:
    """One URL to measure, and where a plain client's chain of steps ends on a planted ISP.

    ``step`` None: the chain completes (``status`` is the final HTTP status after redirects).
    ``step`` set: the chain stops there with the OONI string ``failure`` (None for a bogon DNS
    answer: nothing is connected to). The probe's record should carry the same failure string
    in that step's result (a redirect hop's failure may surface in the http step instead).
    """

    url: str
    step: str | None = None
    failure: str | None = None
    status: int | None = None


@dataclasses.dataclass(frozen=True)
class Technique:
    """One planted censorship technique (or a baseline), with what a probe should see."""

    name: str
    checks: tuple[Check, ...]
    expect: Expect
    zone: tuple[Name, ...] = ()
    isp_dns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    proxy_block: tuple[str, ...] = ()  # Host names the transparent proxy answers with its page
    inject: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> forged A
    sites: tuple[Site, ...] = ()
    listeners: tuple[Listener, ...] = ()
    resolver: str = "isp"  # the resolver the probe tests: "isp" or "public"
    control: str = "collector"  # "collector" (a live control) or "dead" (DEAD_CONTROL_URL)
    notes: str = ""

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(c.url for c in self.checks)

    @property
    def isp_side(self) -> bool:
        """True when the technique plants something in an ISP (else it is the same everywhere)."""
        return bool(self.isp_dns or self.rules or self.proxy_block or self.inject)


OK_UNPLANTED = Expect("ok", why="not planted on this ISP: its resolver and middlebox are honest")


def expected(technique: Technique, planted: bool) -> Expect:
    """Return the verdict expected on an ISP that does (or does not) plant the technique."""
    if planted or not technique.isp_side:
        return technique.expect
    return OK_UNPLANTED


@dataclasses.dataclass(frozen=True)
class IspSpec:
    """One ISP of the lab: its letter, how many probe namespaces, and what it plants.

    techniques: names from the plan to plant (None: every technique). isp_dns and rules add
    ISP-specific policy on top (e.g. answer 127.0.0.1 for a name another ISP NXDOMAINs).
    chain: core routers in a row between the ISP's router and the internet (0: none, the
    router's uplink reaches the internet); box: which router holds the middlebox rules, 0 the
    ISP's router, i the core router i (its interface towards the probes is "lan" too, so the
    filter rules read the same; DNAT rules need the router's own servers: keep them at 0).
    """

    letter: str
    probes: int = 1
    techniques: tuple[str, ...] | None = None
    isp_dns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    chain: int = 0
    box: int = 0

    def plants(self, technique: Technique) -> bool:
        return self.techniques is None or technique.name in self.techniques
