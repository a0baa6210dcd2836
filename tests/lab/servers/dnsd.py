"""Lab DNS server (dnslib, UDP+TCP): authoritative from a zone, or a lying forwarding resolver.

usage: python -m tests.lab.servers.dnsd CONFIG.json   (prints READY once both sockets listen)
auth: {"mode": "auth", "listen": ip, "zone": {name.: {"a": [], "aaaa": [], "slow": s}},
       "wildcards": {suffix.: {...}}, "whoami": [name]}; a name not in the zone is NXDOMAIN;
       a whoami name is answered (A) with the address the query came from.
resolver: {"mode": "resolver", "listen": ip, "upstream": ip, "policy": {name.: action}};
actions nxdomain, refused, refused_ede, servfail, empty, drop, or an address to answer.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import sys
import time
from typing import Any

import dnslib
import dnslib.server

EDE_CENSORED = 16  # RFC 8914 "Censored": what Google sends with REFUSED under a court order
EDE_OPTION = 15
RCODES = {
    "nxdomain": "NXDOMAIN",
    "refused": "REFUSED",
    "refused_ede": "REFUSED",
    "servfail": "SERVFAIL",
}


class Auth(dnslib.server.BaseResolver):
    """Answer from a dict, waiting ``slow`` seconds first for names that are slow on purpose."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.zone = config["zone"]
        self.wildcards = config.get("wildcards", {})
        self.whoami = {n.lower().rstrip(".") + "." for n in config.get("whoami", [])}

    def entry(self, name: str) -> dict[str, Any] | None:
        if name in self.zone:
            return self.zone[name]
        return next((e for s, e in self.wildcards.items() if name.endswith("." + s)), None)

    def resolve(self, request: dnslib.DNSRecord, handler: Any) -> dnslib.DNSRecord:
        q = request.q
        reply = request.reply()
        reply.header.aa = 1
        if str(q.qname).lower() in self.whoami:
            asker = handler.client_address[0]
            if q.qtype == dnslib.QTYPE.A and ipaddress.ip_address(asker).version == 4:
                reply.add_answer(dnslib.RR(q.qname, dnslib.QTYPE.A, rdata=dnslib.A(asker), ttl=0))
            return reply
        entry = self.entry(str(q.qname).lower())
        if entry is None:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply
        time.sleep(entry.get("slow", 0))
        if q.qtype in (dnslib.QTYPE.A, dnslib.QTYPE.ANY):
            for a in entry.get("a", []):
                reply.add_answer(dnslib.RR(q.qname, dnslib.QTYPE.A, rdata=dnslib.A(a), ttl=60))
        if q.qtype in (dnslib.QTYPE.AAAA, dnslib.QTYPE.ANY):
            for a in entry.get("aaaa", []):
                rr = dnslib.RR(q.qname, dnslib.QTYPE.AAAA, rdata=dnslib.AAAA(a), ttl=60)
                reply.add_answer(rr)
        return reply


class Resolver(dnslib.server.BaseResolver):
    """Forward honestly, except for the names its policy lies about."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.upstream = config["upstream"]
        self.policy = config.get("policy", {})

    def resolve(self, request: dnslib.DNSRecord, handler: Any) -> dnslib.DNSRecord:
        action = self.policy.get(str(request.q.qname).lower())
        if action is None:
            try:
                return dnslib.DNSRecord.parse(request.send(self.upstream, 53, timeout=3))
            except OSError as e:  # upstream silent: stay silent too, like a real forwarder
                raise dnslib.DNSError(f"upstream: {e}") from None
        if action == "drop":
            if handler.protocol == "tcp":
                time.sleep(30)  # hold the connection open: a TCP client must time out too
            raise dnslib.DNSError("dropped by policy")
        return lie(request, action)


def lie(request: dnslib.DNSRecord, action: str) -> dnslib.DNSRecord:
    """Build the policy's answer: an error rcode, nothing, or the given address."""
    reply = request.reply()
    if action in RCODES:
        reply.header.rcode = getattr(dnslib.RCODE, RCODES[action])
        if action == "refused_ede":
            data = struct.pack("!H", EDE_CENSORED) + b"Censored"
            opt = dnslib.EDNSOption(EDE_OPTION, data)
            reply.add_ar(dnslib.EDNS0(udp_len=1232, opts=[opt]))
        return reply
    if action == "empty":
        return reply
    address = ipaddress.ip_address(action)
    qtype = request.q.qtype
    if address.version == 4 and qtype == dnslib.QTYPE.A:
        reply.add_answer(dnslib.RR(request.q.qname, qtype, rdata=dnslib.A(action), ttl=60))
    elif address.version == 6 and qtype == dnslib.QTYPE.AAAA:
        reply.add_answer(dnslib.RR(request.q.qname, qtype, rdata=dnslib.AAAA(action), ttl=60))
    return reply  # the other family gets NOERROR and no record, as dnsmasq does


def main(path: str) -> None:
    with open(path) as f:
        config = json.load(f)
    resolver = Auth(config) if config["mode"] == "auth" else Resolver(config)
    log = dnslib.server.DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")
    for tcp in (False, True):
        server = dnslib.server.DNSServer(resolver, config["listen"], 53, tcp=tcp, logger=log)
        server.server.daemon_threads = True
        server.start_thread()
    print(f"READY dnsd {config['mode']} on {config['listen']}:53", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
