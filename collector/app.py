"""Wires the collector: routes, middlewares, state and background jobs; no logic of its own."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from typing import Any

import prometheus_client
from aiohttp import web

from collector import handlers, logs
from collector.config import CollectorConfig
from collector.control import ControlVantage
from collector.metrics import Metrics
from probe import config as probe_config
from probe import watchlist as watchlist_mod
from probe.flow import FlowOptions


@dataclasses.dataclass
class State:
    """Everything a handler may use, built once at start-up."""

    config: CollectorConfig
    registry: prometheus_client.CollectorRegistry
    metrics: Metrics
    control: ControlVantage | None
    watchlist: Any = None
    watchlist_doc: dict[str, Any] | None = None
    store: Any = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


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
    state = State(
        config=cfg, registry=registry, metrics=Metrics(registry), control=control, store=store
    )
    if cfg.watchlist:
        state.watchlist = watchlist_mod.load_watchlist(cfg.watchlist)
        state.watchlist_doc = json.loads(
            json.dumps(watchlist_mod.watchlist_to_dict(state.watchlist))
        )
    app = web.Application(middlewares=[json_errors], client_max_size=cfg.max_body_bytes)
    app[handlers.STATE] = state
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_post("/api/v1/control", handlers.post_control)
    app.router.add_get("/api/v1/watchlist", handlers.get_watchlist)
    app.router.add_get("/metrics", handlers.get_metrics)
    logging.getLogger("aiohttp.access").disabled = True  # it would log the client's address
    return app
