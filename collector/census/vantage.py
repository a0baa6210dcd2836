"""The collector's own look at addresses: TCP, then TLS with the SNI, then with a neutral SNI.

docs/spec.md, "Address targets": an address the collector cannot reach either is ``down``, never
blocked. Reachable means TCP connected and one handshake completed (no certificate check:
reaching a handshake is what counts). The probe's steps do the measuring (probe/steps/tcp.py,
tls.py), the probe's address policy says what may be dialled (never a non-public address, unless
``network.allow_networks``), and the looks are bounded: at most ``rate`` new connections a
second, ``concurrency`` looks at once, ``per_pass`` looks a judgement pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

from collector.census.sweeps import NEUTRAL_SNI
from collector.config import CollectorConfig
from probe import addresses, failures
from probe.addresses import Network
from probe.steps import tcp, tls

TIMEOUT_SECONDS = 5.0
CONCURRENCY = 32
# Looks one judgement pass takes at most: a backlog of blocked addresses is looked at over
# several passes; an address not looked at in time rests on the probes' word.
PER_PASS_SECONDS = 20


@dataclasses.dataclass(frozen=True)
class Look:
    """The collector's look at one address: the name it tried first, and the failure (None:
    reached)."""

    ip: str
    sni: str
    failure: str | None


class AddressVantage:
    """Looks at addresses from the collector's network, within its rate and concurrency."""

    def __init__(
        self,
        rate: float,
        allow_networks: Sequence[Network] = (),
        concurrency: int = CONCURRENCY,
        timeout_seconds: float = TIMEOUT_SECONDS,
        dial_as: Callable[[str], str] = str,
    ) -> None:
        self.rate, self.allow_networks = rate, tuple(allow_networks)
        self.timeout_seconds = timeout_seconds
        # the address actually dialled for an address looked at: the seam where tests reroute
        # an allowed network to loopback (the policy never dials loopback itself)
        self.dial_as = dial_as
        self.per_pass = max(1, int(rate * PER_PASS_SECONDS))
        self._slots = asyncio.Semaphore(concurrency)
        self._pace = asyncio.Lock()
        self._next_start = 0.0

    async def look_all(self, targets: Mapping[str, tuple[int, str]]) -> list[Look]:
        """Look at each address of ``targets`` (address -> port, SNI), at most ``per_pass`` of
        them, those the address policy allows only."""
        chosen = [
            (ip, port, sni)
            for ip, (port, sni) in sorted(targets.items())
            if addresses.is_connectable(ip, self.allow_networks)
        ][: self.per_pass]
        return list(await asyncio.gather(*(self.look(*target) for target in chosen)))

    async def look(self, ip: str, port: int, sni: str) -> Look:
        """Look at ``ip``:``port``: TCP, then TLS with ``sni``, then with the neutral name when
        that fails; never raise on a network failure."""
        async with self._slots:
            failure = await self._handshake(ip, port, sni)
            if failure is not None and not failure.startswith(_TCP_FAILED) and sni != NEUTRAL_SNI:
                failure = await self._handshake(ip, port, NEUTRAL_SNI)
        return Look(ip, sni, None if failure is None else failure.removeprefix(_TCP_FAILED))

    async def _handshake(self, ip: str, port: int, sni: str) -> str | None:
        """Connect and handshake once; return None, the TLS failure, or the TCP failure
        marked as such (a second name cannot help a connect that fails)."""
        await self._paced()
        dialled = self.dial_as(ip)
        connected, stream = await tcp.connect(tcp.TCPSpec(dialled, port, self.timeout_seconds))
        if stream is None:
            return _TCP_FAILED + (connected.failure or failures.TIMEOUT)
        spec = tls.TLSSpec(dialled, port, sni, self.timeout_seconds, verify=False)
        result = await tls.upgrade(stream, spec, connected.ms)
        if result.failure is None:
            _, writer = stream
            writer.close()
            with contextlib.suppress(*failures.NETWORK_ERRORS):
                async with asyncio.timeout(self.timeout_seconds):
                    await writer.wait_closed()
        return result.failure

    async def _paced(self) -> None:
        """Wait for this connection's turn: at most ``rate`` new connections a second."""
        async with self._pace:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 1 / self.rate
        if start > now:
            await asyncio.sleep(start - now)


# marks a TCP failure inside this module only (never stored: removed by ``look``)
_TCP_FAILED = "tcp:"


def vantage(cfg: CollectorConfig) -> AddressVantage | None:
    """The vantage ``cfg`` describes; None with the control disabled (--no-control) or the
    census (``census.enabled: false``): address flags then rest on the probes alone."""
    if not cfg.control_enabled or not cfg.census_enabled:
        return None
    return AddressVantage(cfg.census_vantage_rate, addresses.networks(cfg.allow_networks))
