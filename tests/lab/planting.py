"""Turn the plan into what the lab's servers and middleboxes load: JSON configs, iptables text.

Pure functions of the techniques, the ISP specs and the address plan; the topology writes their
output to files and starts the servers on them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from tests.lab import addressing
from tests.lab.addressing import IspAddresses
from tests.lab.plan import BENCH_SUFFIX, CDN, OK_NAME
from tests.lab.processes import LabError
from tests.lab.technique import BLOCKPAGE, IspSpec, Name, Rule, Technique

INTERNET = (
    ipaddress.ip_network("10.200.3.0/24"),
    ipaddress.ip_network("fd00:200:0:3::/64"),
    ipaddress.ip_network(addressing.CENSUS_NET),
)
BLOCK_BODY = "BLOCKED by ISP {isp}: access to {host} is restricted by court order."


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def entries(techniques: Iterable[Technique]) -> list[tuple[str, Name]]:
    """Return (technique, zone entry) pairs, always with ok.example (readiness resolves it)."""
    return [("baseline", OK_NAME)] + [(t.name, n) for t in techniques for n in t.zone]


def zone(techniques: Iterable[Technique]) -> dict[str, dict[str, Any]]:
    """Merge every technique's zone entries (the authoritative side is the same for all ISPs)."""
    out: dict[str, dict[str, Any]] = {}
    for owner, n in entries(techniques):
        entry = {"a": list(n.a), "aaaa": list(n.aaaa), "slow": n.slow_seconds}
        if out.setdefault(fqdn(n.domain), entry) != entry:
            raise LabError(f"{owner}: {n.domain} is declared twice with different records")
    return out


def auth_config(techniques: Sequence[Technique]) -> dict[str, Any]:
    wildcards = {fqdn(BENCH_SUFFIX): {"a": [CDN]}}
    return {
        "mode": "auth",
        "listen": addressing.AUTH_DNS,
        "zone": zone(techniques),
        "wildcards": wildcards,
    }


def web_addresses(techniques: Iterable[Technique]) -> dict[str, str]:
    """Return every internet web address -> the certificate kind it serves ("none": closed)."""
    out: dict[str, str] = {}
    techniques = list(techniques)
    for _, n in entries(techniques):
        for a in (*n.a, *n.aaaa):
            out.setdefault(str(ipaddress.ip_address(a)), "lab")
    for t in techniques:
        for li in t.listeners:
            out[str(ipaddress.ip_address(li.addr))] = li.cert
    for a in out:
        if not any(ipaddress.ip_address(a) in net for net in INTERNET):
            raise LabError(f"web address {a} is outside the internet ns ranges {INTERNET}")
    return out


def internet_addresses(techniques: Iterable[Technique]) -> list[str]:
    fixed = [addressing.AUTH_DNS, addressing.PUBLIC_RESOLVER, addressing.COLLECTOR]
    return sorted({*fixed, *web_addresses(techniques)})


def web_config(
    techniques: Sequence[Technique], certdir: str, probe_nets: list[str]
) -> dict[str, Any]:
    """The internet web server: ports 80 and 443 on every web address, vhosts from the sites."""
    files = {"lab": "web.pem", "wrong_name": "wrong_name.pem", "other_ca": "other_ca.pem"}
    listeners = []
    for addr, cert in web_addresses(techniques).items():
        if cert == "none":
            continue
        listeners.append({"addr": addr, "port": 80, "cert": None})
        listeners.append({"addr": addr, "port": 443, "cert": f"{certdir}/{files[cert]}"})
    sites = {}
    for t in techniques:
        for s in t.sites:
            behaviour = {k: v for k, v in vars(s).items() if k not in ("host", "path") and v}
            sites[f"{s.host.lower()} {s.path}"] = behaviour
    return {"listeners": listeners, "sites": sites, "probe_networks": probe_nets}


def names(techniques: Iterable[Technique]) -> list[str]:
    """Every lab name the lab certificate covers (plus the benchmark wildcard)."""
    techniques = list(techniques)
    found = {n.domain for _, n in entries(techniques)}
    found |= {s.host for t in techniques for s in t.sites}
    return [*sorted(found), f"*.{BENCH_SUFFIX}"]


def planted(spec: IspSpec, techniques: Iterable[Technique]) -> list[Technique]:
    return [t for t in techniques if spec.plants(t)]


def resolver_config(
    spec: IspSpec, isp: IspAddresses, techniques: Iterable[Technique]
) -> dict[str, Any]:
    """The ISP's resolver: honest forwarder to the authoritative, except for its policy."""
    policy: dict[str, str] = {}
    for t in planted(spec, techniques):
        policy.update(t.isp_dns)
    policy.update(spec.isp_dns)
    resolved = {fqdn(k): isp.blockpage if v == BLOCKPAGE else v for k, v in policy.items()}
    return {
        "mode": "resolver",
        "listen": isp.resolver,
        "upstream": addressing.AUTH_DNS,
        "policy": resolved,
    }


def public_resolver_config() -> dict[str, Any]:
    return {
        "mode": "resolver",
        "listen": addressing.PUBLIC_RESOLVER,
        "upstream": addressing.AUTH_DNS,
    }


def isp_web_config(isp: IspAddresses, certdir: str) -> dict[str, Any]:
    """The ISP's block-page host (451 on 80/443) and TLS interceptor (self-signed, :8443)."""
    page = {
        "status": 451,
        "title": f"Blocked by ISP {isp.letter}",
        "body": BLOCK_BODY.replace("{isp}", isp.letter),
    }
    bp_cert = f"{certdir}/blockpage-{isp.letter}.pem"
    intercepted = {"status": 200, "body": "intercepted {host}"}
    return {
        "listeners": [
            {"addr": isp.blockpage, "port": 80, "cert": None, "default": page},
            {"addr": isp.blockpage, "port": 443, "cert": bp_cert, "default": page},
            {
                "addr": isp.blockpage,
                "port": addressing.INTERCEPT_PORT,
                "cert": f"{certdir}/selfsigned.pem",
                "default": intercepted,
            },
        ],
    }


def proxy_config(
    spec: IspSpec, isp: IspAddresses, techniques: Iterable[Technique]
) -> dict[str, Any] | None:
    """The transparent proxy's config, or None when no planted rule sends traffic to it."""
    chosen = planted(spec, techniques)
    if not any(r.kind == "proxy" for r in isp_rules(spec, chosen)):
        return None
    block = sorted({h for t in chosen for h in t.proxy_block})
    return {
        "listen": isp.blockpage,
        "port": addressing.PROXY_PORT,
        "block": block,
        "isp": isp.letter,
    }


def inject_config(
    spec: IspSpec, isp: IspAddresses, techniques: Iterable[Technique]
) -> dict[str, Any] | None:
    """The injector's config, or None when no planted technique injects."""
    forged = {
        fqdn(k): isp.blockpage if v == BLOCKPAGE else v
        for t in planted(spec, techniques)
        for k, v in t.inject.items()
    }
    if not forged:
        return None
    forged[fqdn(WARMUP_NAME)] = isp.blockpage
    return {"iface": "lan", "exclude": [isp.resolver], "names": forged}


WARMUP_NAME = "warmup.inject.example"  # not in the zone: only the forged answer carries an address


def isp_rules(spec: IspSpec, techniques: Iterable[Technique]) -> list[Rule]:
    rules = [r for t in techniques for r in t.rules] + list(spec.rules)
    return list(dict.fromkeys(rules))  # one rule serves every technique that declares it


def rule_lines(rule: Rule, isp: IspAddresses) -> tuple[str, str]:
    """Return (table, iptables-restore line) for one middlebox rule."""
    fwd, drop = "-A FORWARD -i lan", "-j DROP"
    reset = "-j REJECT --reject-with tcp-reset"
    string = f'-m string --string "{rule.match}" --algo bm --icase'
    host = f'-m string --string "Host: {rule.match}" --algo bm --icase'
    loss = f"-m statistic --mode random --probability {rule.probability}"
    dnat = f"-A PREROUTING -i lan -p tcp -d {rule.addr} --dport"
    to = f"-j DNAT --to-destination {isp.blockpage}"
    kinds = {
        "drop": ("filter", f"{fwd} -d {rule.addr} {drop}"),
        "reset": ("filter", f"{fwd} -d {rule.addr} -p tcp {reset}"),
        "sni_reset": ("filter", f"{fwd} -p tcp --dport 443 {string} {reset}"),
        "sni_drop": ("filter", f"{fwd} -p tcp --dport 443 {string} {drop}"),
        "host_reset": ("filter", f"{fwd} -p tcp --dport 80 {host} {reset}"),
        "host_drop": ("filter", f"{fwd} -p tcp --dport 80 {host} {drop}"),
        "loss": ("filter", f"{fwd} -d {rule.addr} {loss} {drop}"),
        "proxy": ("nat", f"{dnat} 80 {to}:{addressing.PROXY_PORT}"),
        "intercept": ("nat", f"{dnat} 443 {to}:{addressing.INTERCEPT_PORT}"),
    }
    if rule.kind not in kinds:
        raise LabError(f"unknown middlebox rule kind {rule.kind!r}")
    return kinds[rule.kind]


def iptables_restore(spec: IspSpec, isp: IspAddresses, techniques: Iterable[Technique]) -> str:
    """Return the router's IPv4 ruleset (filter + nat) for iptables-restore."""
    tables: dict[str, list[str]] = {"filter": [], "nat": []}
    for rule in isp_rules(spec, planted(spec, techniques)):
        table, line = rule_lines(rule, isp)
        tables[table].append(line)
    chains = {
        "filter": ("INPUT", "FORWARD", "OUTPUT"),
        "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    }
    out = []
    for table, lines in tables.items():
        out += [f"*{table}", *(f":{c} ACCEPT [0:0]" for c in chains[table]), *lines, "COMMIT"]
    return "\n".join(out) + "\n"


def delay_rules(queue: int) -> list[list[str]]:
    """The mangle-table rules sending the uplink through the delayer (mangle: a filter-table
    NFQUEUE accept would skip the censorship rules after it; lab.md §12)."""
    common = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
    return [
        ["-t", "mangle", "-A", "PREROUTING", "-i", "wan", *common],
        ["-t", "mangle", "-A", "POSTROUTING", "-o", "wan", *common],
    ]
