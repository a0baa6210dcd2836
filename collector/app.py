"""Wires the collector: routes, middlewares, state and background jobs; no logic of its own."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from typing import Any

import prometheus_client
from aiohttp import web

from collector import handlers, logs
from collector.asn import AsnDatabase
from collector.auth import RateLimiter
from collector.config import CollectorConfig
from collector.control import ControlVantage
from collector.metrics import Metrics
from probe import config as probe_config
from probe import fingerprints
from probe import watchlist as watchlist_mod
from probe.flow import FlowOptions


@dataclasses.dataclass
class State:
    """Everything a handler may use, built once at start-up."""

    config: CollectorConfig
    registry: prometheus_client.CollectorRegistry
    metrics: Metrics
    control: ControlVantage | None
    store: Any
    fingerprints: Any
    asn_db: AsnDatabase | None = None
    watchlist: Any = None
    watchlist_doc: dict[str, Any] | None = None
    probe_limiter: RateLimiter = dataclasses.field(default_factory=lambda: RateLimiter(120))
    source_limiter: RateLimiter = dataclasses.field(default_factory=lambda: RateLimiter(600))

    def lookup_network(self, address: str) -> tuple[int, str | None] | None:
        """The network an address belongs to, from the ASN database; None without one."""
        if self.asn_db is None:
            return None
        found = self.asn_db.lookup(address)
        return (found.asn, found.name) if found else None

    def asn_of(self, address: str) -> int | None:
        found = self.asn_db.lookup(address) if self.asn_db else None
        return found.asn if found else None

    async def after_ingest(self, rows: list[Any], outcome: Any) -> None:
        """Hook for the analysis (flags, collateral) once a batch is committed."""


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer every error as JSON; an unexpected one is a 500 without a traceback to the client."""
    try:
        return await handler(request)
    except handlers.Problem as e:
        return handlers.error(e.status, e.message)
    except web.HTTPException as e:
        if e.content_type == "application/json" or e.status < 400:
            raise
        return handlers.error(e.status, e.reason if e.text is None else e.text.strip())
    except Exception:
        logs.LOG.exception("unexpected error", extra={"fields": {"path": request.path}})
        return handlers.error(500, "internal error (logged)")


def control_options(cfg: CollectorConfig) -> FlowOptions:
    """The control vantage measures like a probe, through the collector's own resolver."""
    ip, port = probe_config.parse_resolver(cfg.control_resolver or probe_config.system_resolver())
    nets = tuple(ipaddress.ip_network(n, strict=False) for n in cfg.allow_networks)
    return FlowOptions(resolver=ip, resolver_port=port, ca_file=cfg.ca_file, allow_networks=nets)


def build_app(
    cfg: CollectorConfig,
    store: Any = None,
    registry: prometheus_client.CollectorRegistry | None = None,
    control: ControlVantage | None = None,
) -> web.Application:
    """Build the aiohttp application for ``cfg``; tests pass their own store and registry."""
    registry = registry or prometheus_client.CollectorRegistry()
    if control is None and cfg.control_enabled:
        control = ControlVantage(
            control_options(cfg), cfg.control_concurrency, cfg.control_cache_seconds
        )
    fps = fingerprints.default_fingerprints()
    if cfg.fingerprints:
        fps = fps.merge(fingerprints.load_fingerprints(*cfg.fingerprints))
    state = State(
        config=cfg,
        registry=registry,
        metrics=Metrics(registry),
        control=control,
        store=store,
        fingerprints=fps,
        asn_db=AsnDatabase(cfg.asn_database) if cfg.asn_database else None,
        probe_limiter=RateLimiter(cfg.rate_per_probe_per_minute),
        source_limiter=RateLimiter(cfg.rate_per_source_per_minute),
    )
    if cfg.watchlist:
        state.watchlist = watchlist_mod.load_watchlist(cfg.watchlist)
        state.watchlist_doc = watchlist_mod.watchlist_to_dict(state.watchlist)
    app = web.Application(middlewares=[json_errors], client_max_size=cfg.max_body_bytes)
    app[handlers.STATE] = state
    routes = [
        ("GET", "/healthz", handlers.healthz),
        ("POST", "/api/v1/probes", handlers.post_probes),
        ("POST", "/api/v1/measurements", handlers.post_measurements),
        ("GET", "/api/v1/measurements", handlers.get_measurements),
        ("POST", "/api/v1/control", handlers.post_control),
        ("GET", "/api/v1/watchlist", handlers.get_watchlist),
        ("GET", "/metrics", handlers.get_metrics),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    logging.getLogger("aiohttp.access").disabled = True  # it would log the client's address
    return app
