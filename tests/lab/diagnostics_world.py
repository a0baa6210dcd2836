"""The diagnostics' lab: an ISP with two core routers in a row, its middlebox on a chosen one.

ISP "a" is router_a (hop 1, the LAN's resolver and the DNS injector on the LAN bridge), then
core_a1 (hop 2) and core_a2 (hop 3), then the internet (hop 4). It plants dns_injection (the
injector forges inject.example for any resolver but its own), dns_localhost (its resolver
lies by itself), sni_reset and host_reset (REJECT with a TCP reset in the forwarding of the
router holding the box: ``Lab.move_box``), and ``server_reset``: a web host of the internet
that resets the probes' connections itself once they send data (its own kernel answers, so
the reset leaves with the SYN-ACK's TTL), and serves everyone else (the control).
"""

from __future__ import annotations

from tests.lab.plan import BY_NAME, blocked, fails, on
from tests.lab.technique import IspSpec, Technique

SERVER_RESET_ADDR = "10.200.3.31"
SERVER_RESET = Technique(
    "server_reset",
    fails("https://srv-rst.example/", "tls", "connection_reset"),
    blocked("tls", None, "the host resets the probes' connections itself"),
    zone=on(SERVER_RESET_ADDR, "srv-rst.example"),
    notes="internet side: server_reset_rule() in the internet ns",
)
PLANTED = ("dns_injection", "dns_localhost", "sni_reset", "host_reset")
TECHNIQUES_HERE = (*(BY_NAME[n] for n in PLANTED), SERVER_RESET, BY_NAME["ok_https"])
ISPS = (IspSpec("a", techniques=(*PLANTED, "server_reset"), chain=2, box=1),)
# what each box position makes a TTL-limited trace see: the hop and the address it enters by
BOX_HOPS = {1: (2, "10.200.2.2"), 2: (3, "10.200.101.2")}


def server_reset_rule(lan: str) -> list[str]:
    """The internet ns's rule: a reset from the host itself for the probes' data segments."""
    return [
        "iptables", "-A", "INPUT", "-s", lan, "-d", SERVER_RESET_ADDR, "-p", "tcp",
        "--dport", "443", "--tcp-flags", "PSH", "PSH", "-j", "REJECT",
        "--reject-with", "tcp-reset",
    ]  # fmt: skip
