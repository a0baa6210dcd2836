"""The control vantage: probe.flow run from the collector's network, bounded, cached briefly.

The control is a probe on an unfiltered network: the same code in another place (DESIGN.md). It
dials the addresses the probe reports too, so that the verdict can tell a geo-CDN answer (a valid
certificate for the name on the probe's address) from a lie.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

from collector.config import CollectorConfig
from probe import __version__
from probe import config as probe_config
from probe.flow import Flow, FlowOptions
from probe.record import Control, Measurement, ProbeInfo, Target


def control_options(cfg: CollectorConfig) -> FlowOptions:
    """The control vantage measures like a probe, through the collector's own resolver."""
    ip, port = probe_config.parse_resolver(cfg.control_resolver or probe_config.system_resolver())
    nets = tuple(ipaddress.ip_network(n, strict=False) for n in cfg.allow_networks)
    return FlowOptions(resolver=ip, resolver_port=port, ca_file=cfg.ca_file, allow_networks=nets)


class ControlRequestError(ValueError):
    """A control request the collector refuses (answered 400 with this message)."""


@dataclass(frozen=True)
class ControlTarget:
    url: str
    addresses: tuple[str, ...]


def parse_request(body: object, max_targets: int) -> list[ControlTarget]:
    """Validate the JSON body of POST /api/v1/control: {"targets": [{"url", "addresses"}]}."""
    if not isinstance(body, dict) or not isinstance(body.get("targets"), list):
        raise ControlRequestError("body: expected an object with a 'targets' array")
    targets = body["targets"]
    if not 0 < len(targets) <= max_targets:
        raise ControlRequestError(f"targets: give between 1 and {max_targets} targets")
    out = []
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or not isinstance(t.get("url"), str):
            raise ControlRequestError(f"targets[{i}].url: missing or not a string")
        if not t["url"].startswith(("http://", "https://")):
            raise ControlRequestError(f"targets[{i}].url: not an http or https URL")
        addrs = t.get("addresses", [])
        if not isinstance(addrs, list) or len(addrs) > 32:
            raise ControlRequestError(f"targets[{i}].addresses: expected at most 32 addresses")
        for a in addrs:
            try:
                ipaddress.ip_address(a)
            except (ValueError, TypeError):
                raise ControlRequestError(
                    f"targets[{i}].addresses: not an IP address: {a!r}"
                ) from None
        out.append(ControlTarget(t["url"], tuple(sorted(set(addrs)))))
    return out


class ControlVantage:
    """Measure control targets with bounded concurrency and a short cache."""

    def __init__(
        self,
        options: FlowOptions,
        concurrency: int = 16,
        cache_seconds: float = 60.0,
        flow: Flow | None = None,
    ) -> None:
        self.flow = flow or Flow(options)
        self.sem = asyncio.Semaphore(concurrency)
        self.cache_seconds = cache_seconds
        self._cache: dict[ControlTarget, tuple[float, Control]] = {}
        self._inflight: dict[ControlTarget, asyncio.Future[Control]] = {}
        self.probe = ProbeInfo(software=f"surblocage-control/{__version__}")

    async def measure(self, targets: Sequence[ControlTarget]) -> list[Control]:
        """Return one Control per target, in order."""
        return list(await asyncio.gather(*(self._one(t) for t in targets)))

    async def _one(self, t: ControlTarget) -> Control:
        now = time.monotonic()
        hit = self._cache.get(t)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        if t in self._inflight:  # the same target asked by many probes at once: measure once
            return await asyncio.shield(self._inflight[t])
        fut: asyncio.Future[Control] = asyncio.get_running_loop().create_future()
        self._inflight[t] = fut
        try:
            async with self.sem:
                m = await self.flow.measure(_target(t.url), self.probe, extra_addresses=t.addresses)
            c = to_control(m)
            self._cache[t] = (time.monotonic(), c)
            self._expire(now)
            fut.set_result(c)
            return c
        finally:
            del self._inflight[t]
            if not fut.done():
                fut.cancel()

    def _expire(self, now: float) -> None:
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.cache_seconds}


def to_control(m: Measurement) -> Control:
    measured = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Control(
        dns=m.dns, tcp=m.tcp, tls=m.tls, http=m.http, measured_at=measured.replace("+00:00", "Z")
    )


def _target(url: str) -> Target:
    import urllib.parse

    host = urllib.parse.urlsplit(url).hostname or ""
    return Target(service="control", url=url, domain=host, category="control")
