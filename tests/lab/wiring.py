"""The lab's links and addresses: ``ip`` commands that build namespaces, veths and routes.

Every veth is created with both ends directly inside lab namespaces (``ip link add X netns A
type veth peer name Y netns B``), so the root namespace never holds an end (lab.md §4).
Interface names are local to each namespace: probe "eth0"; router "lan" (a bridge with one
"p<n>" port per probe) and "wan"; internet "to_<isp>".
"""

from __future__ import annotations

import os
import pathlib
import signal
import time

from tests.lab.addressing import IspAddresses
from tests.lab.netns import exec_in, ip

ETC_NETNS = pathlib.Path("/etc/netns")


def make_namespace(name: str, router: bool) -> None:
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")
    # DAD off before any link exists, or the first IPv6 packets stall ~1 s (lab.md §4)
    sysctls = ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
    if router:
        sysctls += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
        # br_netfilter is built in and on: frames crossing the LAN bridge would traverse
        # iptables. The injector's forgeries leave through the bridge (scapy sends at layer 2)
        # while the query they answer waits in the delayer: conntrack then saw the reverse
        # flow first, and with NAT loaded the router stopped forwarding new flows. The LAN is
        # plain switching; only routed traffic meets the middlebox.
        sysctls += [
            f"net.bridge.bridge-nf-call-{t}=0" for t in ("iptables", "ip6tables", "arptables")
        ]
    exec_in(name, ["sysctl", "-qw", *sysctls], check=True)


def veth(name: str, ns: str, peer: str, peer_ns: str) -> None:
    """Create a veth pair with each end born directly in its namespace."""
    ip("link", "add", name, "netns", ns, "type", "veth", "peer", "name", peer, "netns", peer_ns)


def wire_isp(a: IspAddresses, router: str, internet: str) -> None:
    """Give the router its LAN bridge, block-page address and uplink, and route both ways."""
    ip("-n", router, "link", "add", "lan", "type", "bridge")
    ip("-n", router, "addr", "add", f"{a.router}/24", "dev", "lan")
    ip("-n", router, "addr", "add", f"{a.router6}/64", "dev", "lan", "nodad")
    ip("-n", router, "link", "set", "lan", "up")
    ip("-n", router, "addr", "add", f"{a.blockpage}/32", "dev", "lo")
    peer = f"to_{a.letter}"
    veth("wan", router, peer, internet)
    ip("-n", router, "addr", "add", f"{a.uplink_router}/24", "dev", "wan")
    ip("-n", router, "addr", "add", f"{a.uplink_router6}/64", "dev", "wan", "nodad")
    ip("-n", router, "link", "set", "wan", "up")
    ip("-n", internet, "addr", "add", f"{a.uplink_internet}/24", "dev", peer)
    ip("-n", internet, "addr", "add", f"{a.uplink_internet6}/64", "dev", peer, "nodad")
    ip("-n", internet, "link", "set", peer, "up")
    ip("-n", router, "route", "add", "default", "via", a.uplink_internet)
    ip("-n", router, "-6", "route", "add", "default", "via", a.uplink_internet6)
    ip("-n", internet, "route", "add", a.lan, "via", a.uplink_router)
    ip("-n", internet, "route", "add", f"{a.blockpage}/32", "via", a.uplink_router)
    ip("-n", internet, "-6", "route", "add", a.lan6, "via", a.uplink_router6)


def wire_chain(a: IspAddresses, router: str, cores: list[str], internet: str) -> None:
    """Give the router its LAN and uplink as wire_isp does, the uplink reaching core router 1,
    then core routers in a row to the internet ("lan" towards the probes, "wan" away)."""
    ip("-n", router, "link", "add", "lan", "type", "bridge")
    ip("-n", router, "addr", "add", f"{a.router}/24", "dev", "lan")
    ip("-n", router, "addr", "add", f"{a.router6}/64", "dev", "lan", "nodad")
    ip("-n", router, "link", "set", "lan", "up")
    ip("-n", router, "addr", "add", f"{a.blockpage}/32", "dev", "lo")
    hops = [(router, "wan", a.uplink_router, a.uplink_router6)]
    for i, core in enumerate(cores, start=1):
        here, here6 = a.link(i)[0], a.link6(i)[0]
        hops.append((core, "wan", here, here6))
    # each link: (this side's ns, its name, address) -> (the next ns, its name, address)
    nexts = [(core, "lan", *_entry(a, i)) for i, core in enumerate(cores, start=1)]
    nexts.append((internet, f"to_{a.letter}", *_entry(a, len(cores) + 1)))
    for (ns, name, addr, addr6), (peer_ns, peer, peer_addr, peer6) in zip(hops, nexts, strict=True):
        veth(name, ns, peer, peer_ns)
        for n, dev, v4, v6 in ((ns, name, addr, addr6), (peer_ns, peer, peer_addr, peer6)):
            ip("-n", n, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", n, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", n, "link", "set", dev, "up")
        ip("-n", ns, "route", "add", "default", "via", peer_addr)
        ip("-n", ns, "-6", "route", "add", "default", "via", peer6)
        # the router's own uplink address asks the internet too (its resolver's queries)
        uplink = [] if ns == router else [f"{a.uplink_router}/32"]
        for net in (a.lan, f"{a.blockpage}/32", *uplink):
            ip("-n", peer_ns, "route", "add", net, "via", addr)
        ip("-n", peer_ns, "-6", "route", "add", a.lan6, "via", addr6)


def _entry(a: IspAddresses, i: int) -> tuple[str, str]:
    """The address by which hop i (1: the first core router) is entered from the probes' side."""
    if i == 1:
        return a.uplink_internet, a.uplink_internet6
    return a.link(i - 1)[1], a.link6(i - 1)[1]


def wire_probe(a: IspAddresses, n: int, router: str, probe: str) -> None:
    """Plug probe number n into its ISP's LAN; its system resolver becomes the ISP's."""
    veth(f"p{n}", router, "eth0", probe)
    ip("-n", router, "link", "set", f"p{n}", "master", "lan", "up")
    ip("-n", probe, "addr", "add", f"{a.probe(n)}/24", "dev", "eth0")
    ip("-n", probe, "addr", "add", f"{a.probe6(n)}/64", "dev", "eth0", "nodad")
    ip("-n", probe, "link", "set", "eth0", "up")
    ip("-n", probe, "route", "add", "default", "via", a.router)
    ip("-n", probe, "-6", "route", "add", "default", "via", a.router6)
    # `ip netns exec` bind-mounts this file over /etc/resolv.conf (lab.md §5)
    etc = ETC_NETNS / probe
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {a.resolver}\noptions timeout:2 attempts:1\n")


def add_host_addresses(ns: str, addresses: list[str]) -> None:
    # CONFIG_DUMMY is off on this kernel: internet hosts are addresses on lo (lab.md §2)
    for addr in addresses:
        ip("-n", ns, "addr", "add", addr + ("/128" if ":" in addr else "/32"), "dev", "lo")


def existing(prefix: str) -> list[str]:
    """Return the namespaces whose name starts with ``prefix-``."""
    listed = ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.startswith(f"{prefix}-")]


def remove(prefix: str) -> None:
    """Kill everything in the prefix's namespaces, delete them and their /etc/netns entries."""
    for name in existing(prefix):
        kill_all(name)
        ip("netns", "del", name, check=False)
    if ETC_NETNS.exists():
        for path in ETC_NETNS.glob(f"{prefix}-*"):
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        try:
            ETC_NETNS.rmdir()  # only when empty: another lab may be using it
        except OSError:
            pass


def kill_all(ns: str) -> None:
    """Kill every process inside netns ``ns`` (TERM, then KILL what is left)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except ProcessLookupError:
                pass
        if not pids:
            return
        time.sleep(0.2)
