"""Which diagnostics a blocked record calls for, run under the cycle's budget, one at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
import urllib.parse
from pathlib import Path
from typing import Any

from probe import failures
from probe.addresses import is_connectable
from probe.diagnostics import injection, location, resets, triggers
from probe.diagnostics.memory import FILE, Memory
from probe.diagnostics.pacing import Budget
from probe.diagnostics.platform import unavailable
from probe.kinds import Network
from probe.record import Diagnostics, Measurement, TLSResult

# a diagnosis does not start with fewer packets left (the cheapest sends one, a location ~50)
MIN_PACKETS = 10


@dataclasses.dataclass(frozen=True)
class Settings:
    """The diagnostics' configuration (probe/config.py DiagnosticsConfig) and what they need of
    the probe's: the networks it may reach, the tested resolver, the collector's address."""

    enabled: bool = True
    interval_seconds: float = 6 * 3600.0
    budget: int = 2000
    pps: float = 20.0
    max_hops: int = 20
    silent_address: str | None = None
    allow_networks: tuple[Network, ...] = ()
    resolver: str | None = None  # the primary resolver path's address, when it is plain UDP
    resolver_port: int = 53
    neutral_name: str = "www.example.com"
    state_dir: Path | None = None  # where the interval is remembered; None: no interval

    @classmethod
    def of(
        cls, cfg: Any, resolver: str | None, port: int, neutral_name: str, keep_interval: bool
    ) -> Settings:
        """Build from a ProbeConfig; ``keep_interval`` False (`check`): diagnose every time."""
        d = cfg.diagnostics
        silent = d.silent_address or _address_of(cfg.collector.url) or _address_of(
            cfg.control.url if cfg.control.enabled else None
        )  # fmt: skip
        return cls(
            enabled=d.enabled, interval_seconds=d.interval, budget=d.budget, pps=d.pps,
            max_hops=d.max_hops, silent_address=silent,
            allow_networks=tuple(cfg.network.allow_networks), resolver=resolver,
            resolver_port=port, neutral_name=neutral_name,
            state_dir=cfg.state_dir if keep_interval else None,
        )  # fmt: skip


def _address_of(url: str | None) -> str | None:
    """The host of ``url`` when it is an IPv4 address (a name is not resolved for this)."""
    host = urllib.parse.urlsplit(url).hostname if url else None
    try:
        return str(ipaddress.IPv4Address(host)) if host else None
    except ValueError:
        return None


class Diagnoser:
    """Diagnose blocked records: at most one at a time, within the cycle's packets and pace."""

    def __init__(self, settings: Settings, off: str | None = None) -> None:
        self.settings = settings
        # why no diagnosis can run here (a record's ``skipped``), found once at start
        self.off = "disabled" if not settings.enabled else off or unavailable()
        self.budget = Budget(settings.budget, settings.pps)
        state = settings.state_dir / FILE if settings.state_dir else None
        self.memory = Memory(state, settings.interval_seconds if state else 0.0)
        self._lock = asyncio.Lock()

    def new_cycle(self) -> None:
        """Give the cycle starting its whole packet budget."""
        self.budget.reset()

    async def diagnose(self, m: Measurement) -> Diagnostics:
        """Diagnose one blocked record, or say why not."""
        if self.off is not None:
            return Diagnostics(skipped=self.off)
        if not self.memory.due(m.target.url):
            return Diagnostics(skipped="interval")
        async with self._lock:
            if self.budget.left < MIN_PACKETS:
                return Diagnostics(skipped="budget")
            t0 = time.perf_counter()
            found = await self._run(m)
            self.memory.done(m.target.url)
        return dataclasses.replace(found, duration_ms=round((time.perf_counter() - t0) * 1000))

    def _may_send(self, address: str | None) -> bool:
        """IPv4 (the raw sockets' family), and public unless the config allows its network."""
        return (
            address is not None
            and ":" not in address
            and is_connectable(address, self.settings.allow_networks)
        )

    async def _run(self, m: Measurement) -> Diagnostics:
        host = urllib.parse.urlsplit(m.target.url).hostname or m.target.domain
        method = m.verdict.method if m.verdict else None
        packets = malformed = 0
        out = Diagnostics()
        primary = [r for r in m.dns if r.path == m.probe.path and r.name in (None, host)]
        if method == "dns" or injection.raced(primary):
            silent = self._silent(m)
            if silent is not None:
                found, n, bad = await injection.probe(host, silent, primary, self.budget)
                out = dataclasses.replace(out, dns_injection=found)
                packets, malformed = packets + n, malformed + bad
        reset = self._reset_target(m, host)
        if reset is not None:
            origin, n, bad = await resets.probe(*reset, self.budget)
            out = dataclasses.replace(out, reset_origin=origin)
            packets, malformed = packets + n, malformed + bad
        trigger = self._trigger(m, method)
        if trigger is not None:
            s = self.settings
            where, tally = await location.locate(
                trigger, host, s.neutral_name, s.max_hops, self.budget
            )
            out = dataclasses.replace(out, location=where)
            packets, malformed = packets + tally.packets, malformed + tally.malformed
        return dataclasses.replace(out, packets=packets, malformed=malformed)

    def _silent(self, m: Measurement) -> str | None:
        """An address on the path that runs no resolver: the configured one, the collector's,
        else the service's own web address as the control resolved it."""
        own = [a for r in (m.control.dns if m.control else []) for a in r.answers]
        for address in (self.settings.silent_address, *own):
            if self._may_send(address) and address != self.settings.resolver:
                return address
        return None

    def _reset_target(self, m: Measurement, host: str) -> tuple[str, int, bytes] | None:
        """The connection that ended with a reset, and the data that set it off."""
        cut: list[TLSResult] = [
            t for t in m.tls if t.failure == failures.CONNECTION_RESET and not t.neutral
        ]
        if cut and self._may_send(cut[0].ip):
            return cut[0].ip, cut[0].port, triggers.client_hello(cut[0].sni)
        h = m.http
        if h is not None and h.failure == failures.CONNECTION_RESET and self._may_send(h.ip):
            assert h.ip is not None
            parts = urllib.parse.urlsplit(h.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if parts.scheme == "http":
                return h.ip, port, triggers.http_request(host, parts.path or "/")
        tcp = [t for t in m.tcp if t.failure == failures.CONNECTION_RESET]
        if tcp and self._may_send(tcp[0].ip):
            payload = triggers.client_hello(host) if tcp[0].port == 443 else b""
            return tcp[0].ip, tcp[0].port, payload
        return None

    def _trigger(self, m: Measurement, method: str | None) -> location.Trigger | None:
        """The request to repeat with growing TTLs, for the layer the verdict blames."""
        s = self.settings
        if method == "dns":
            udp = any(r.transport == "udp" for r in m.dns if r.path == m.probe.path)
            if udp and self._may_send(s.resolver):
                assert s.resolver is not None
                return location.Trigger("dns", s.resolver, s.resolver_port)
            return None
        if method == "tls":
            cut = [t for t in m.tls if t.failure and not t.neutral and self._may_send(t.ip)]
            if cut:
                return location.Trigger("tls", cut[0].ip, cut[0].port)
            return None
        if method in ("http_failure", "http_blockpage") and m.http is not None:
            parts = urllib.parse.urlsplit(m.http.url)
            ip = m.http.ip or next((t.ip for t in m.tcp if t.failure is None), None)
            if parts.scheme == "http" and self._may_send(ip):
                assert ip is not None
                return location.Trigger("http", ip, parts.port or 80)
        return None
