"""The public resolvers of the lab's "internet": one under blocking orders, one encrypted.

Beside the honest public resolver (addressing.PUBLIC_RESOLVER, a plain forwarder), the internet
ns holds a "Google" that answers REFUSED with Extended DNS Error 16 for the names on an order
list (as Google Public DNS does under French court orders) and an encrypted resolver answering
DNS over TLS (:853) and over HTTPS (:443, /dns-query) honestly. The authoritative answers the
whoami name with the address of the resolver asking.
"""

from __future__ import annotations

from typing import Any

from tests.lab import addressing
from tests.lab.planting import fqdn

CENSOR = "10.200.3.9"  # the public resolver under blocking orders (a "Google")
ENCRYPTED = "10.200.3.7"  # DoT and DoH, honest
ADDRESSES = (CENSOR, ENCRYPTED)
ORDER_LIST = ("dns-nx.example", "dns-lo.example")  # names a court ordered public resolvers to block
WHOAMI = "whoami.example"  # its authoritative answers with the asking resolver's address
DOH_URL = f"https://{ENCRYPTED}/dns-query"
DOT = f"tls://{ENCRYPTED}"


def censor_config() -> dict[str, Any]:
    return {
        "mode": "resolver",
        "listen": CENSOR,
        "upstream": addressing.AUTH_DNS,
        "policy": {fqdn(n): "refused_ede" for n in ORDER_LIST},
    }


def encrypted_config(cert: str) -> dict[str, Any]:
    return {"listen": ENCRYPTED, "upstream": addressing.PUBLIC_RESOLVER, "cert": cert}


def paths(isp_resolver: str) -> list[str]:
    """The --resolver arguments of a probe testing its ISP's and the lab's public resolvers."""
    return [
        f"isp={isp_resolver}",
        f"google={CENSOR}",
        f"honest={addressing.PUBLIC_RESOLVER}",
        f"doh={DOH_URL}",
        f"dot={DOT}",
    ]
