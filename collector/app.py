"""Wires the collector: routes, middlewares, state and background jobs; no logic of its own."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import gc
import logging
import re
import time
import traceback
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import prometheus_client
from aiohttp import web

from collector import control as control_mod
from collector import cors, dashboard, handlers, ingest, learned_routes, peers, signatures
from collector.asn import AsnDatabase
from collector.auth import RateLimiter
from collector.census import judgement as census_judgement
from collector.census import queries as census_queries
from collector.census import reads as census_reads
from collector.census import refresh as census_refresh
from collector.census import routes as census_routes
from collector.census import vantage as census_vantage
from collector.census.background import AddressJudge
from collector.census.targets import TargetCache
from collector.config import CollectorConfig
from collector.control import ControlTarget, ControlVantage
from collector.judge import Findings, Judge, refresh_metrics
from collector.judge.learner import Learner
from collector.judge.rules import Policy
from collector.metrics import Metrics
from collector.pages import routes as pages
from collector.store import StoreUnavailable
from probe import addresses, fingerprints, logs
from probe import watchlist as watchlist_mod
from probe.record import Control
from probe.times import elapsed_ms


class InFlight:
    """The requests being handled, so that a stopping collector can let them finish.

    aiohttp's own graceful shutdown stops reading from open connections at once, which would
    cut a batch still being uploaded: the collector first stops accepting, then waits here.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout_seconds: float) -> bool:
        """Wait until no request is in flight; False if some still are after the timeout."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


# A batch decodes into some ten thousand short-lived containers, and CPython's default (a pass
# over the young objects every 700 allocations, promoting a batch still in use to older
# generations) took half of the time of validating a record (docs/benchmarks.md §5).
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """For a serving process, once set up: collect less often, and keep the objects built at
    start-up (modules, the app, the fingerprints) out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    control_caller_limiter: RateLimiter = dataclasses.field(default_factory=lambda: RateLimiter(60))
    control_limiter: RateLimiter = dataclasses.field(default_factory=lambda: RateLimiter(600))
    trusted_proxies: tuple[peers.Network, ...] = ()
    guard: peers.ConnectionGuard = dataclasses.field(
        default_factory=lambda: peers.ConnectionGuard(10.0, 1024, 32)
    )
    inflight: InFlight = dataclasses.field(default_factory=InFlight)
    findings: Findings | None = None
    source_key: str | None = None  # the key of the source networks' hashes, read once
    judge: Judge | None = None
    address_judge: AddressJudge | None = None
    # the census per network, (asn, network, blocked addresses, collateral domains), as the
    # gauges' last refresh counted it: the dashboard's headline reads it (None: not yet)
    census_counts: list[tuple[int | None, str | None, int, int]] | None = None
    targets: TargetCache | None = None
    # learns block signatures from the positive controls, and serves them (None: no store)
    learner: Learner | None = None

    def lookup_network(self, address: str) -> tuple[int, str | None] | None:
        """The network an address belongs to, from the ASN database; None without one."""
        if self.asn_db is None:
            return None
        found = self.asn_db.lookup(address)
        return (found.asn, found.name) if found else None

    def asn_of(self, address: str) -> int | None:
        found = self.asn_db.lookup(address) if self.asn_db else None
        return found.asn if found else None

    async def prepare_batch(
        self, raw: bytes, probe: Any, looked_up: tuple[int, str | None] | None
    ) -> list[Any]:
        """A submitted body -> rows to store (collector.ingest.prepare_batch); BatchError if
        refused. The seam where the per-record work could go to other processes."""
        return ingest.prepare_batch(
            raw,
            self.config.max_batch_records,
            probe,
            looked_up,
            self.fingerprints,
            self.asn_of,
            max_age=datetime.timedelta(seconds=self.config.max_record_age_seconds),
            network_of_address=self.lookup_network,
        )

    async def census_judged(self) -> None:
        """Drain the pending sweeps before reading address flags or the census (a read
        reflects every sweep acknowledged before it); a database that fails is a 503."""
        if self.address_judge is None:
            return
        try:
            await self.address_judge.drain()
        except StoreUnavailable:
            self.metrics.reject("store_unavailable")
            raise handlers.Problem(503, "the database is unavailable; try again later") from None

    async def judged(self) -> None:
        """Drain the pending pairs before reading flags or collateral (docs/spec.md: a read reflects
        every batch acknowledged before it); a database that fails is a 503."""
        if self.judge is None:
            return
        try:
            await self.judge.drain()
        except StoreUnavailable:
            self.metrics.reject("store_unavailable")
            raise handlers.Problem(503, "the database is unavailable; try again later") from None


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer every error as JSON; an unexpected one is a 500 without a traceback to the client."""
    try:
        return await handler(request)
    except handlers.Problem as e:
        answer = handlers.error(e.status, e.message)
        if e.close:
            answer.force_close()
        return answer
    except web.HTTPException as e:
        if e.content_type == "application/json" or e.status < 400:
            raise
        answer = handlers.error(e.status, e.reason if e.text is None else e.text.strip())
        if "Allow" in e.headers:  # a 405 must say which methods are allowed (RFC 9110, 15.5.6)
            answer.headers["Allow"] = e.headers["Allow"]
        return answer
    except Exception:
        logs.LOG.exception("unexpected error", extra={"fields": {"path": request.path}})
        return handlers.error(500, "internal error (logged)")


@web.middleware
async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
    """Log and count each request's route, status and duration: never the client's address or
    query (the route is the pattern matched, not the path asked)."""
    t0, status = time.perf_counter(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
        ms = round(elapsed_ms(t0), 1)
        shown = route or "-"
        logs.event("request", level, method=request.method, route=shown, status=status, ms=ms)
        metrics = request.app[handlers.STATE].metrics
        metrics.observe_request(route, request.method, status, ms / 1000)


QUIET_ROUTES = frozenset({"/metrics", "/healthz"})  # scraped every few seconds
# IPv4 dotted quads and anything shaped like an IPv6 address (two colons or more)
ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}")


class NoAddresses(logging.Filter):
    """Blank addresses out of aiohttp's own messages: it names the client of a request it
    cannot parse ("Error handling request from %s"), and the collector never logs one."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = ADDRESS.sub("<address>", text), None
        return True


def hide_addresses() -> None:
    """Install NoAddresses on aiohttp's server loggers, once; silence its access log."""
    logging.getLogger("aiohttp.access").disabled = True  # it would log the client's address
    for name in ("aiohttp.server", "aiohttp.web"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoAddresses) for f in logger.filters):
            logger.addFilter(NoAddresses())


# every route, each described in collector/openapi.py (a test holds the two together)
ROUTES = [
    ("GET", "/healthz", handlers.healthz),
    ("POST", "/api/v1/probes", handlers.post_probes),
    ("POST", "/api/v1/probes/{probe_id}/token", handlers.post_token),
    ("POST", "/api/v1/measurements", handlers.post_measurements),
    ("GET", "/api/v1/measurements", handlers.get_measurements),
    ("GET", "/api/v1/export", handlers.get_export),
    ("POST", "/api/v1/control", handlers.post_control),
    ("GET", "/api/v1/watchlist", handlers.get_watchlist),
    ("GET", "/api/v1/whoami", handlers.get_whoami),
    ("GET", "/api/v1/flags", handlers.get_flags),
    ("GET", "/api/v1/collateral", handlers.get_collateral),
    ("GET", "/api/v1/signatures", learned_routes.get_signatures),
    ("GET", "/api/v1/addresses", census_routes.get_addresses),
    ("POST", "/api/v1/sweeps", census_routes.post_sweeps),
    *census_reads.ROUTES,
    ("GET", "/metrics", handlers.get_metrics),
    ("GET", "/api/v1/openapi.json", handlers.get_openapi),
    ("GET", "/api/v1/flags/{flag_id}/evidence", pages.get_evidence),
    ("GET", "/api/v1/evidence/key", pages.get_evidence_key),
    ("GET", "/", pages.overview),
    ("GET", "/timeline", pages.timeline),
    ("GET", "/collateral", pages.collateral),
    ("GET", "/flags/{flag_id}", pages.flag_page),
    ("GET", "/measurements/{record_id}", pages.measurement_page),
    ("GET", "/static/{name}", dashboard.get_static),
]


def build_app(
    cfg: CollectorConfig,
    store: Any = None,
    registry: prometheus_client.CollectorRegistry | None = None,
    control: ControlVantage | None = None,
    judge_in_background: bool = True,
    address_vantage: census_vantage.AddressVantage | None = None,
) -> web.Application:
    """Build the aiohttp application for ``cfg``; tests pass their own store and registry (and
    address vantage), and may hold the background judges back (readers still judge what is
    pending)."""
    registry = registry or prometheus_client.CollectorRegistry()
    if control is None and cfg.control_enabled:
        control = control_mod.vantage(cfg)
    fps = fingerprints.default_fingerprints()
    if cfg.fingerprints:
        fps = fps.merge(fingerprints.load_fingerprints(*cfg.fingerprints))

    state = State(
        config=cfg,
        registry=registry,
        metrics=Metrics(registry),
        control=control,
        store=store,
        fingerprints=signatures.RememberedFingerprints(fps),
        asn_db=AsnDatabase(cfg.asn_database) if cfg.asn_database else None,
        probe_limiter=RateLimiter(cfg.rate_per_probe_per_minute),
        source_limiter=RateLimiter(cfg.rate_per_source_per_minute),
        control_caller_limiter=RateLimiter(cfg.control_rate_per_probe_per_minute),
        control_limiter=RateLimiter(cfg.control_rate_per_minute),
        trusted_proxies=addresses.networks(cfg.trusted_proxies),
        guard=peers.ConnectionGuard(
            cfg.header_timeout_seconds, cfg.max_connections, cfg.max_connections_per_client
        ),
    )
    if cfg.watchlist:
        state.watchlist = watchlist_mod.load_watchlist(cfg.watchlist)
        state.watchlist_doc = watchlist_mod.watchlist_to_dict(state.watchlist)
    sharing = cors.Cors(cfg.cors_origins)
    app = web.Application(
        middlewares=[
            state.guard.middleware, state.inflight.middleware, access_log, sharing.preflight,
            json_errors,
        ],
        client_max_size=cfg.max_body_bytes,
    )  # fmt: skip
    app.on_response_prepare.append(sharing.on_prepare)
    app[handlers.STATE] = state
    for method, path, handler in ROUTES:
        if method == "GET":  # and HEAD (RFC 9110, 9.3.2): the same answer without its body
            app.router.add_get(path, handler, allow_head=True)
        else:
            app.router.add_route(method, path, handler)
    if store is not None:
        state.findings = Findings(store, flag_policy(cfg))
        verify = functools.partial(_verify_service, state)
        state.judge = Judge(state.findings, state.metrics, verify)
        app.cleanup_ctx.append(_metrics_refresher)
        _census(state, address_vantage)
        app.cleanup_ctx.append(_published_addresses)
        if judge_in_background:
            app.cleanup_ctx.append(_background_judge)
            app.cleanup_ctx.append(_background_address_judge)
        _learner(state, app, judge_in_background)
        if cfg.census_enabled:
            app.cleanup_ctx.append(_census_refresh)
    hide_addresses()
    return app


METRICS_REFRESH_SECONDS = 30.0


def _census(state: State, vantage: census_vantage.AddressVantage | None) -> None:
    """The census's probe side: the published addresses and the address judge."""
    cfg = state.config
    allow = addresses.networks(cfg.allow_networks)
    state.targets = TargetCache(state.store, cfg.census_addresses_per_cycle, allow)
    state.targets.watched_names = functools.partial(_watched_names, state)
    vantage = vantage or census_vantage.vantage(cfg)
    options = census_judgement.Options(flag_policy(cfg), vantage is not None, allow)
    state.address_judge = AddressJudge(
        state.store,
        state.metrics,
        options,
        vantage,
        datetime.timedelta(seconds=cfg.census_vantage_max_age_seconds),
        on_change=state.targets.invalidate,
    )


def _watched_names(state: State) -> dict[str, str]:
    """Each watched service's host name (its first URL's), by id."""
    if state.watchlist is None:
        return {}
    return {
        s.id: urllib.parse.urlsplit(s.urls[0]).hostname or ""
        for s in state.watchlist.services
        if s.urls
    }


async def _verify_service(state: State, service: str) -> bool | None:
    """Whether the collector's own control vantage reaches ``service`` (its first watchlist
    URL), cached as every control is; None when it cannot tell."""
    control = await _own_control(state, service)
    return None if control is None else control_mod.reaches(control)


async def _own_control(state: State, service: str) -> Control | None:
    """The collector's own control of ``service`` (its first watchlist URL), cached as every
    control is; None without a vantage, for a service it does not watch, or when it failed."""
    found = state.watchlist.service(service) if state.watchlist is not None else None
    if state.control is None or found is None or not found.urls:
        return None
    try:
        answer = await state.control.measure([ControlTarget(found.urls[0], ())])
    except Exception as e:  # a failed check changes nothing: the probes' controls stand
        logs.event("the collector's own control failed", logging.WARNING, error=repr(e))
        return None
    return answer.controls[0]


def flag_policy(cfg: CollectorConfig) -> Policy:
    """The support a flag needs, from the `flags.*` keys."""
    return Policy(datetime.timedelta(seconds=cfg.min_probe_age_seconds), cfg.min_networks)


async def _metrics_refresher(app: web.Application) -> AsyncIterator[None]:
    """Keep the store-derived gauges right between batches: a probe falling silent sends
    nothing, and another collector process may share the database."""
    stop = asyncio.Event()
    state = app[handlers.STATE]
    task = asyncio.create_task(_refresh_until(state, state.findings, stop))
    yield
    # let a refresh in flight finish: cancelling would leave its worker thread holding a
    # database connection past the store's close
    stop.set()
    await task


def _learner(state: State, app: web.Application, in_background: bool) -> None:
    """Learn block signatures from the watchlist's positive controls (``dns_only``); without a
    watchlist nothing is learned, and what the database holds is still served."""
    services = state.watchlist.services if state.watchlist is not None else ()
    controls = {s.id for s in services if s.dns_only}
    state.learner = Learner(state.store, controls, functools.partial(_own_control, state))
    if in_background:
        app.cleanup_ctx.append(_background_learner)


async def _background_learner(app: web.Application) -> AsyncIterator[None]:
    """Learn from the positive controls batches hand over, after their acknowledgement."""
    stop = asyncio.Event()
    learner = app[handlers.STATE].learner
    task = asyncio.create_task(learner.run(stop))
    yield
    stop.set()
    await task


async def _background_judge(app: web.Application) -> AsyncIterator[None]:
    """Judge the pairs batches mark, after their acknowledgement (collector.judge)."""
    stop = asyncio.Event()
    judge = app[handlers.STATE].judge
    task = asyncio.create_task(judge.run(stop))
    yield
    stop.set()  # a pass in flight finishes: its marks are deleted with its flags, or not at all
    await task


async def _census_refresh(app: web.Application) -> AsyncIterator[None]:
    """Resolve the census's domain index at start and every census.refresh seconds."""
    stop = asyncio.Event()
    state = app[handlers.STATE]
    resolver = census_refresh.resolver_for(state.config)  # a ConfigError stops serve starting
    task = asyncio.create_task(
        census_refresh.run(
            state.config, state.store, state.metrics, resolver, stop, state.targets.invalidate
        )
    )
    yield
    stop.set()  # lookups in flight are dropped, answers in are recorded before the store closes
    await task


async def _published_addresses(app: web.Application) -> AsyncIterator[None]:
    """Compute the addresses probes sweep at start, in the background (over a large index,
    most of a minute); let a computation in flight end before the store closes."""
    targets = app[handlers.STATE].targets
    targets.start()
    yield
    await targets.settled()


async def _background_address_judge(app: web.Application) -> AsyncIterator[None]:
    """Judge the sweeps probes send, after their acknowledgement (collector.census)."""
    stop = asyncio.Event()
    task = asyncio.create_task(app[handlers.STATE].address_judge.run(stop))
    yield
    stop.set()
    await task


async def _refresh_until(state: State, findings: Findings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await refresh_metrics(
                findings, state.metrics, state.config.silent_after_seconds, state.judge
            )
        except StoreUnavailable as e:
            logs.event(
                "metrics refresh failed: the database is unavailable", logging.WARNING,
                error=str(e),
            )  # fmt: skip
        try:
            await refresh_census(state)
        except StoreUnavailable as e:
            logs.event(
                "census metrics refresh failed: the database is unavailable", logging.WARNING,
                error=str(e),
            )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), METRICS_REFRESH_SECONDS)


async def refresh_census(state: State) -> None:
    """Set the census gauges from the census (docs/spec.md): in a worker thread, every
    METRICS_REFRESH_SECONDS, never on a scrape (a count over a million domains is no scrape's
    work). A database that fails raises StoreUnavailable, for the refresher to log. It does not
    judge pending sweeps itself: the address judge does, in the background (a gauge may lag a
    pass; the census routes drain first)."""
    counts = await asyncio.to_thread(state.store.read, census_queries.network_counts)
    state.metrics.set_census(counts)
    state.census_counts = counts
