"""The one address policy (docs/spec.md --allow-network): which addresses are public, which may be
dialled; pure. The probe's flow, the collector's control and the census all ask it.

Non-public: private, loopback, link-local, shared (CGNAT), multicast, reserved, unspecified,
documentation and benchmarking space, and every IPv6 form that embeds an IPv4 address that is
not public (IPv4-mapped, -compatible and -translated, NAT64, 6to4, Teredo): a resolver's answer
``64:ff9b::7f00:1`` or ``::ffff:127.0.0.1`` reaches the machine itself as surely as 127.0.0.1.
The table is ours, not ipaddress's ``is_global``, whose answers change between Python versions
and which counted multicast and those embedded forms as public.

Loopback and unspecified addresses, in any of those forms, are always an anomaly, whatever is
allowed: a resolver that answers 127.0.0.1 must not make a volunteer's probe talk to its own
machine. Other non-public addresses are dialled only inside allowed networks.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import NamedTuple

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA's special-purpose registries (RFC 6890 and successors), taken whole: a /24 of which two
# addresses are anycast services is still no place for a measurement to go
V4_NOT_PUBLIC = _nets(
    "0.0.0.0/8",  # "this network", and 0.0.0.0 unspecified (RFC 1122)
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private (RFC 1918)
    "100.64.0.0/10",  # shared address space: carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (RFC 3927)
    "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation (RFC 5737)
    "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
)  # fmt: skip
# global unicast (RFC 4291 §2.4): everything outside it is loopback, unspecified, embedded
# IPv4, unique local, link-local, site-local, multicast or not allocated
V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
V6_NOT_PUBLIC = _nets(
    "2001::/23",  # IETF protocol assignments (RFC 2928); Teredo, inside it, is judged apart
    "2001:db8::/32", "3fff::/20",  # documentation (RFC 3849, RFC 9637)
)  # fmt: skip
TEREDO = ipaddress.ip_network("2001::/32")  # RFC 4380
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # RFC 3056
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052): DNS64 answers
# local use (RFC 8215): never public; its IPv4 is read where a /96 prefix puts it, the last 32 bits
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # IPv4-mapped (RFC 4291 §2.5.5.2)
COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)
TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (SIIT, RFC 2765)
# forms that are no address on the wire: the socket API dials the IPv4 itself (mapped), or only
# a translator knows them; whatever they embed, nobody is measured there
ON_THE_HOST_ONLY = (MAPPED, COMPATIBLE, TRANSLATED, NAT64_LOCAL)


class _Facts(NamedTuple):
    address: bool  # an IP address at all
    anomalous: bool  # loopback or unspecified in any form, or not an address
    public: bool


def embedded_ipv4(addr: Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Return the IPv4 addresses an IPv6 address embeds (none for IPv4 and plain IPv6)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return ()
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in TEREDO:
        assert addr.teredo is not None  # (server, client): the client's bits are inverted
        return addr.teredo
    if addr in SIX_TO_FOUR:
        assert addr.sixtofour is not None
        return (addr.sixtofour,)
    if any(addr in n for n in (MAPPED, COMPATIBLE, TRANSLATED, NAT64, NAT64_LOCAL)):
        return (low32,)
    return ()


def _v4_public(addr: ipaddress.IPv4Address) -> bool:
    return not any(addr in n for n in V4_NOT_PUBLIC)


def _v4_loopback_or_unspecified(addr: ipaddress.IPv4Address) -> bool:
    return addr.is_loopback or addr.is_unspecified


def _public(addr: Address, embedded: tuple[ipaddress.IPv4Address, ...]) -> bool:
    if isinstance(addr, ipaddress.IPv4Address):
        return _v4_public(addr)
    if not all(_v4_public(v4) for v4 in embedded):
        return False  # an embedded IPv4 that is not public makes the whole address not public
    if addr in NAT64:
        return True  # a DNS64 answer for a public IPv4 (IPv6-only lines)
    if any(addr in n for n in ON_THE_HOST_ONLY):
        return False
    if addr in TEREDO:
        return True
    return addr in V6_GLOBAL_UNICAST and not any(addr in n for n in V6_NOT_PUBLIC)


@functools.lru_cache(maxsize=8192)
def _facts(text: str) -> _Facts:
    # Remembered: the collector judges the same CDN addresses record after record, and each
    # answer is checked against the tables above (a measured share of ingest, revision 08bfe5d).
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return _Facts(False, True, False)
    embedded = embedded_ipv4(addr)
    anomalous = addr.is_loopback or addr.is_unspecified
    anomalous = anomalous or any(_v4_loopback_or_unspecified(v4) for v4 in embedded)
    return _Facts(True, anomalous, _public(addr, embedded))


def is_ip(text: str) -> bool:
    return _facts(text).address


def always_anomalous(text: str) -> bool:
    """Loopback or unspecified (in any form), or not an address: never dialled, always a bogon."""
    return _facts(text).anomalous


def is_public(text: str) -> bool:
    """Tell whether ``text`` is a public address by the table above; False for a non-address."""
    return _facts(text).public


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDR texts already checked (a config's), host bits allowed."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def prefix_of(text: str, v4_length: int, v6_length: int) -> Network | None:
    """Return the network of ``v4_length`` or ``v6_length`` bits holding the address ``text``
    (an IPv4-mapped IPv6 address as its IPv4 one, a zone dropped); None for what is not one."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    length = v4_length if addr.version == 4 else v6_length
    return ipaddress.ip_network((addr, length), strict=False)


def within(text: str, nets: Iterable[Network]) -> bool:
    """Tell whether ``text`` is an address inside one of ``nets``; False for what is not one."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in nets)


def is_connectable(text: str, allow_networks: Iterable[Network] = ()) -> bool:
    """Tell whether a probe may connect to ``text``: public, or inside an allowed network."""
    facts = _facts(text)
    if facts.anomalous:
        return False
    return facts.public or within(text, allow_networks)


def select(
    addresses: Sequence[str], allow_networks: Sequence[Network] = (), per_family: int | None = None
) -> tuple[list[str], int]:
    """Return the connectable ``addresses`` to dial, in order and without repeats, at most
    ``per_family`` of each family (None: all), and how many connectable ones the cap left out."""
    usable = [a for a in dict.fromkeys(addresses) if is_connectable(a, allow_networks)]
    if per_family is None:
        return usable, 0
    v4 = [a for a in usable if ":" not in a][:per_family]
    v6 = [a for a in usable if ":" in a][:per_family]
    kept = set(v4 + v6)
    return [a for a in usable if a in kept], len(usable) - len(kept)
