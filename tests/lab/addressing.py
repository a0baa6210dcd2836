"""The lab's address plan: every address lives in 10.200.0.0/16 or fd00:200::/48, inside lab netns.

ISP number k (0 for "a", 1 for "b", ...) owns three /24s: 10.200.{10k+1}.0/24 is its probe LAN
(router and resolver on .1, probes from .2), 10.200.{10k+2}.0/24 its uplink to the internet ns
(router .1, internet .2), and its block-page host is 10.200.9.{10k+9} on the router's lo. The
"internet" ns holds the web and DNS hosts (10.200.3.x), the census's shared addresses
(10.200.6.x, tests/lab/census_world.py), the collector (10.200.4.1) and routes back to every ISP.
IPv6 mirrors it inside fd00:200::/48: 10.200.N.0/24 -> fd00:200:0:N::/64. An ISP with core
routers (IspSpec.chain) links them in a row on 10.200.{100+10k+i}.0/24, router i on .1.
"""

from __future__ import annotations

import dataclasses

NETWORK = "10.200.0.0/16"  # give the probe --allow-network this, or it treats the lab as bogons
NETWORK6 = "fd00:200::/48"
AUTH_DNS = "10.200.3.53"  # authoritative for every lab name
PUBLIC_RESOLVER = "10.200.3.8"  # an honest recursive resolver outside any ISP (a "Google")
CENSUS_NET = "10.200.6.0/24"  # the collateral census's shared hosting addresses (internet ns)
COLLECTOR = "10.200.4.1"  # where the collector / control listens (internet ns, lo)
COLLECTOR_PORT = 8080
# nothing ever listens on port 9 of the collector's address: a control that refuses at once
DEAD_CONTROL_URL = f"http://{COLLECTOR}:9/api/v1/control"
BLOCKPAGE_NET = "10.200.9.0/24"  # every ISP's block-page host is in here (lab fingerprint)
PROXY_PORT = 8080  # the transparent proxy, on the block-page address (DNAT target for :80)
INTERCEPT_PORT = 8443  # the TLS interceptor, same address (DNAT target for :443)
LETTERS = "abcdefghi"


@dataclasses.dataclass(frozen=True)
class IspAddresses:
    """The addresses of one ISP of the lab."""

    letter: str

    @property
    def index(self) -> int:
        return LETTERS.index(self.letter)

    def _net(self, offset: int) -> str:
        return f"10.200.{10 * self.index + offset}"

    @property
    def lan(self) -> str:
        return f"{self._net(1)}.0/24"

    @property
    def router(self) -> str:
        """The router's LAN address, which is also the ISP's resolver."""
        return f"{self._net(1)}.1"

    @property
    def resolver(self) -> str:
        return self.router

    @property
    def uplink_router(self) -> str:
        return f"{self._net(2)}.1"

    @property
    def uplink_internet(self) -> str:
        return f"{self._net(2)}.2"

    @property
    def blockpage(self) -> str:
        return f"10.200.9.{10 * self.index + 9}"

    def probe(self, n: int) -> str:
        """Return the address of probe number n (1-based) on the LAN."""
        return f"{self._net(1)}.{1 + n}"

    def _net6(self, offset: int) -> str:
        return f"fd00:200:0:{10 * self.index + offset}:"

    @property
    def lan6(self) -> str:
        return f"{self._net6(1)}:/64"

    @property
    def router6(self) -> str:
        return f"{self._net6(1)}:1"

    @property
    def uplink_router6(self) -> str:
        return f"{self._net6(2)}:1"

    @property
    def uplink_internet6(self) -> str:
        return f"{self._net6(2)}:2"

    def probe6(self, n: int) -> str:
        return f"{self._net6(1)}:{1 + n:x}"

    def link(self, i: int) -> tuple[str, str]:
        """The link after the ISP's core router number i (1-based, IspSpec.chain): its side
        (.1) and the next one's (.2), in 10.200.{100 + 10k + i}.0/24."""
        net = f"10.200.{100 + 10 * self.index + i}"
        return f"{net}.1", f"{net}.2"

    def link6(self, i: int) -> tuple[str, str]:
        net = f"fd00:200:0:{100 + 10 * self.index + i}:"
        return f"{net}:1", f"{net}:2"
