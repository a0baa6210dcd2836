"""One census sweep from the configuration: the collector's list fetched, parsed and swept.

Shared by `check --sweep` and the daemon's cycle. A collector that answers 404 publishes no
list (it is older than the census): there is no sweep, and one info line says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from probe import address_list, logs, sweep
from probe.client import CollectorClient
from probe.config import ProbeConfig

# past the floor (one address every 1/rate seconds), what a sweep may take: its slowest
# address's steps (TCP, TLS, neutral TLS) and a margin
SWEEP_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Census:
    """What a sweep needs from the configuration."""

    rate: float
    max_addresses: int
    tcp_timeout_seconds: float
    tls_timeout_seconds: float
    allow_networks: tuple[address_list.addresses.Network, ...] = ()

    @classmethod
    def of(cls, cfg: ProbeConfig) -> Census:
        t = cfg.timeouts
        return cls(
            cfg.census.rate,
            cfg.census.max_addresses,
            t.tcp,
            t.tls,
            tuple(cfg.network.allow_networks),
        )

    def deadline_seconds(self, addresses: int) -> float:
        """Return how long a sweep of ``addresses`` may run: twice the rate's floor, plus the
        slowest address and a margin (no address starts later)."""
        slowest = self.tcp_timeout_seconds + 2 * self.tls_timeout_seconds
        return 2 * addresses / self.rate + slowest + SWEEP_MARGIN_SECONDS

    async def fetch(self, client: CollectorClient) -> address_list.AddressList | None:
        """Return the collector's address list, or None when it publishes none (404).

        Raises CollectorUnavailable, CollectorRefused and MalformedList as they come.
        """
        doc = await client.addresses()
        if doc is None:
            logs.event("the collector publishes no addresses (older than the census): no sweep")
            return None
        parsed = address_list.parse_list(doc, self.max_addresses, self.allow_networks)
        if parsed.malformed or parsed.not_public or parsed.beyond_cap:
            logs.event(
                "addresses left out of the sweep",
                logging.INFO if not parsed.malformed else logging.WARNING,
                malformed=parsed.malformed,
                not_public=parsed.not_public,
                beyond_cap=parsed.beyond_cap,
            )
        return parsed

    async def run(
        self,
        targets: address_list.AddressList,
        budget_bytes: int | None = None,
        deadline_seconds: float | None = None,
        on_entry: Callable[[sweep.Entry], None] | None = None,
    ) -> sweep.Sweep:
        """Sweep the list within the budget and the deadline (default: ``deadline_seconds``)."""
        n = len(targets.addresses)
        options = sweep.SweepOptions(
            rate=self.rate,
            tcp_timeout_seconds=self.tcp_timeout_seconds,
            tls_timeout_seconds=self.tls_timeout_seconds,
            budget_bytes=budget_bytes,
            deadline_seconds=self.deadline_seconds(n)
            if deadline_seconds is None
            else deadline_seconds,
        )
        return await sweep.sweep(targets.addresses, options, on_entry=on_entry)
