"""Lab on-path DNS injector (scapy), run in an ISP router: forges answers on the probe LAN.

usage: python -m tests.lab.servers.inject CONFIG.json
config: {"iface": name, "exclude": [ip, ...], "names": {"name.": forged A}}. It watches queries
crossing ``iface`` towards any resolver not in ``exclude`` (the ISP's own resolver lies by
itself) and races the real answer with a forged one from the queried server's address. The
forgery wins only when the real answer takes longer than a few ms (lab.md §7): give the name a
slow authoritative entry or put a delay on the uplink. Prints READY once sniffing.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from scapy.all import DNS, DNSRR, IP, UDP, conf, sniff  # type: ignore[attr-defined]


class Injector:
    def __init__(self, config: dict[str, Any]) -> None:
        self.names = {n.lower().encode(): a for n, a in config["names"].items()}
        self.socket = conf.L3socket()  # one raw socket, reused: send() opens one per packet

    def on_packet(self, p: Any) -> None:
        if DNS not in p or p[DNS].qr != 0 or not p[DNS].qd:
            return
        q = p[DNS].qd[0] if isinstance(p[DNS].qd, list) else p[DNS].qd
        forged_a = self.names.get(q.qname.lower())
        if forged_a is None:
            return
        answer = DNSRR(rrname=q.qname, type="A", ttl=300, rdata=forged_a)
        forged = (
            IP(src=p[IP].dst, dst=p[IP].src)
            / UDP(sport=53, dport=p[UDP].sport)
            / DNS(id=p[DNS].id, qr=1, rd=1, ra=1, qd=q, an=answer)
        )
        self.socket.send(forged)
        print(f"{time.time():.4f} injected {q.qname!r} -> {forged_a} for {p[IP].src}", flush=True)


def main(config: dict[str, Any]) -> None:
    injector = Injector(config)
    bpf = "udp dst port 53" + "".join(f" and not dst host {a}" for a in config["exclude"])
    sniff(
        iface=config["iface"],
        filter=bpf,
        prn=injector.on_packet,
        store=False,
        started_callback=lambda: print("READY inject", flush=True),
    )


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
