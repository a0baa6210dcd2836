"""Every Prometheus metric of the collector (prefix surblocage_), on an injected registry.

Contract: every label is bounded. Enumerated labels (status, method, category, reason, operation)
come from closed tuples below and a value outside them raises ValueError: that is a bug in the
caller. Name labels (network, service) come from probes and watchlists, so they are normalised
instead: anything that could carry an address or a URL (a dot-quad, ':', '/'), odd characters or
an over-long name becomes "unknown", and networks past `max_networks` distinct names become "other".
The collector never exposes an address or a URL as a label value.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import time
from collections.abc import Iterable, Iterator

import prometheus_client

from probe import record

REJECTION_REASONS = (
    "malformed_json",
    "schema",
    "too_large",
    "auth",
    "rate_limited",
    "store_unavailable",
    "other",
)
STORE_OPERATIONS = ("insert_batch", "query", "flags", "export")
PROBE_STATUSES = ("live", "silent")
CONTROL_STATUSES = ("ok", "failed")
RECORD_STATUSES = record.STATUSES
METHODS = record.METHODS
CATEGORIES = record.CATEGORIES
# How resolving one name of the census's domain index ended (collector/census/resolve.py):
# addresses kept; no address (NXDOMAIN, no data, none connectable); the resolver failed.
CENSUS_RESULTS = ("addresses", "none", "failed")

UNKNOWN = "unknown"
OTHER = "other"
NAME_MAX_CHARS = 64

# A control measurement runs DNS, TCP, TLS and HTTP from the collector, up to the step timeouts.
CONTROL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# HTTP requests: from a cached page (a millisecond) to a streamed export (a minute or more).
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HTTP_METHODS = ("GET", "HEAD", "POST", "OPTIONS")  # any other method is counted as "other"
UNMATCHED = "unmatched"  # the route label of a request no route matched: never its path
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_DOT_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_NETWORK_PUNCTUATION = frozenset(" .-_&'()+,")
_SERVICE = re.compile(r"[a-z0-9_-]{1,64}")

FlagSeries = tuple[str | None, str, str, str]
"""One open flag as the gauge sees it: (network, service, category, method)."""
Samples = dict[tuple[str, ...], float]


def network_label(name: str | None) -> str:
    """Return a probe's network name as a safe label value, or "unknown"."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_CHARS or _DOT_QUAD.search(name):
        return UNKNOWN
    # ':' and '/' are left out on purpose: they are how IPv6 addresses, CIDRs and URLs look.
    if not all(char.isalnum() or char in _NETWORK_PUNCTUATION for char in name):
        return UNKNOWN
    return name


def asn_label(asn: int | None) -> str:
    """Return an AS number as a label value ("unknown" when the network has none)."""
    return str(asn) if asn is not None else UNKNOWN


def service_label(service: str) -> str:
    """Return a watchlist service id as a label value, or "unknown" if it is not an id."""
    return service if _SERVICE.fullmatch(service) else UNKNOWN


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return `value` if it is one of `allowed`; raise ValueError otherwise."""
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {allowed}")
    return value


class Metrics:
    """The collector's metrics; the app updates them through the methods, never the raw labels."""

    def __init__(
        self,
        registry: prometheus_client.CollectorRegistry,
        *,
        version: str | None = None,
        max_networks: int = 200,
    ) -> None:
        self._max_networks = max_networks
        self._networks: set[str] = set()
        self._series: dict[str, set[tuple[str, ...]]] = {}
        self._last_seen: dict[str, float] = {}
        self._define_ingest(registry)
        self._define_analysis(registry)
        self._define_probes(registry)
        self._define_latency(registry)
        self._define_http(registry)
        self._define_census_index(registry)
        self._define_sweeps(registry)
        self.build_info = prometheus_client.Gauge(
            "surblocage_build_info",
            "Always 1; the version label says which collector version runs.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(version or importlib.metadata.version("surblocage")).set(1)

    def _define_ingest(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.records_ingested = prometheus_client.Counter(
            "surblocage_records_ingested_total",
            "Measurement records stored, by network (the ASN database's when configured), the "
            "network the probe declared, and the verdict status.",
            ["network", "declared_network", "status"],
            registry=registry,
        )
        self.ingest_rejections = prometheus_client.Counter(
            "surblocage_ingest_rejections_total",
            "Submissions refused, by reason (closed list: REJECTION_REASONS).",
            ["reason"],
            registry=registry,
        )
        # Start every reason at 0: increase() cannot see the first increment of a new series.
        for reason in REJECTION_REASONS:
            self.ingest_rejections.labels(reason)

    def _define_sweeps(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.sweeps_ingested = prometheus_client.Counter(
            "surblocage_sweeps_ingested_total",
            "Sweeps stored (new, not resubmitted), by the probe's network.",
            ["network"],
            registry=registry,
        )
        self.sweep_entries_ingested = prometheus_client.Counter(
            "surblocage_sweep_entries_ingested_total",
            "Addresses looked at in the sweeps stored, by the probe's network.",
            ["network"],
            registry=registry,
        )
        self.address_flags_opened = prometheus_client.Counter(
            "surblocage_address_flags_opened_total",
            "Address flags opened (an address going from unflagged or closed to open).",
            ["network", "method"],
            registry=registry,
        )

    def _define_analysis(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.flags_open = prometheus_client.Gauge(
            "surblocage_flags_open",
            "1 per open blocking flag; the series disappears when the flag closes.",
            ["network", "service", "category", "method"],
            registry=registry,
        )
        self.flags_opened = prometheus_client.Counter(
            "surblocage_flags_opened_total",
            "Blocking flags opened (a flag going from absent or closed to open).",
            ["network", "method"],
            registry=registry,
        )
        self.collateral_addresses = prometheus_client.Gauge(
            "surblocage_collateral_addresses",
            "Blocked addresses on this network that serve at least one watched service.",
            ["network"],
            registry=registry,
        )
        self.collateral_services = prometheus_client.Gauge(
            "surblocage_collateral_services",
            "Watched services behind an address blocked on this network.",
            ["network"],
            registry=registry,
        )

        self.census_collateral_domains = prometheus_client.Gauge(
            "surblocage_census_collateral_domains",
            "Indexed domains, not marked intended, on an address blocked on this network now.",
            ["asn", "network"],
            registry=registry,
        )
        self.census_blocked_addresses = prometheus_client.Gauge(
            "surblocage_census_blocked_addresses",
            "Addresses with an open address flag on this network (the collateral census).",
            ["asn", "network"],
            registry=registry,
        )

    def _define_probes(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.probes = prometheus_client.Gauge(
            "surblocage_probes",
            "Known probes by network; live = seen within the silence threshold, else silent.",
            ["network", "status"],
            registry=registry,
        )
        self.network_last_seen = prometheus_client.Gauge(
            "surblocage_network_last_seen_timestamp_seconds",
            "Unix time of the last batch accepted from a probe of this network.",
            ["network"],
            registry=registry,
        )

    def _define_http(self, registry: prometheus_client.CollectorRegistry) -> None:
        # Labels are bounded: a route is one of the app's patterns (or "unmatched"), a method one
        # of HTTP_METHODS (or "other"), a code one of HTTP's three-digit codes.
        self.http_requests = prometheus_client.Counter(
            "surblocage_http_requests_total",
            "HTTP requests answered, by route pattern, method and status code.",
            ["route", "method", "code"],
            registry=registry,
        )
        self.http_duration = prometheus_client.Histogram(
            "surblocage_http_request_duration_seconds",
            "Time from a request's arrival at the app to its answer, by route pattern.",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds...
        prometheus_client.ProcessCollector(registry=registry)

    def _define_latency(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.control_requests = prometheus_client.Counter(
            "surblocage_control_requests_total",
            "Control measurements by outcome: ok = a control was made, failed = none could be.",
            ["status"],
            registry=registry,
        )
        for status in CONTROL_STATUSES:
            self.control_requests.labels(status)
        self.control_addresses_ignored = prometheus_client.Counter(
            "surblocage_control_addresses_ignored_total",
            "Addresses of a name the control did not dial: past the first of each family.",
            registry=registry,
        )
        self.control_duration = prometheus_client.Histogram(
            "surblocage_control_duration_seconds",
            "Time to make one control measurement from the collector's vantage.",
            buckets=CONTROL_BUCKETS,
            registry=registry,
        )
        self.store_duration = prometheus_client.Histogram(
            "surblocage_store_duration_seconds",
            "Time spent in the store, by operation (closed list: STORE_OPERATIONS).",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        for operation in STORE_OPERATIONS:
            self.store_duration.labels(operation)

    def _define_census_index(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.census_index_domains = prometheus_client.Gauge(
            "surblocage_census_index_domains",
            "Names in the census's domain index.",
            registry=registry,
        )
        self.census_resolutions = prometheus_client.Counter(
            "surblocage_census_resolutions_total",
            "Names of the domain index resolved, by result (closed list: CENSUS_RESULTS).",
            ["result"],
            registry=registry,
        )
        for result in CENSUS_RESULTS:
            self.census_resolutions.labels(result)

    def network(self, name: str | None) -> str:
        """Return the label for a network, folding names past the cardinality cap into "other"."""
        label = network_label(name)
        if label in self._networks:
            return label
        if len(self._networks) >= self._max_networks:
            label = OTHER
        if label not in self._networks:
            self._networks.add(label)
            self._start_network(label)
        return label

    def _start_network(self, label: str) -> None:
        """Create a new network's counters at 0, so that increase() sees their first increment."""
        for status in RECORD_STATUSES:  # the series of a probe that declares this network
            self.records_ingested.labels(label, label, status)
        for method in METHODS:
            self.flags_opened.labels(label, method)

    def record_ingested(
        self, network: str | None, status: str, n: int = 1, declared: str | None = None
    ) -> None:
        """Count `n` stored records of one network (as the collector decided it), the network
        the probe declared (the same when not given) and one verdict status."""
        _check(status, RECORD_STATUSES, "record status")
        label = self.network(network)
        said = label if declared is None else self.network(declared)
        self.records_ingested.labels(label, said, status).inc(n)

    def sweep_ingested(self, network: str | None, entries: int) -> None:
        """Count one new sweep of one network and its entries."""
        label = self.network(network)
        self.sweeps_ingested.labels(label).inc()
        self.sweep_entries_ingested.labels(label).inc(entries)

    def address_flag_opened(self, network: str | None, method: str) -> None:
        """Count an address flag the address judge has just opened."""
        label, method = self.network(network), _check(method, METHODS, "method")
        self.address_flags_opened.labels(label, method).inc()

    def reject(self, reason: str) -> None:
        """Count one refused submission."""
        self.ingest_rejections.labels(_check(reason, REJECTION_REASONS, "rejection reason")).inc()

    def flag_opened(self, network: str | None, method: str, n: int = 1) -> None:
        """Count flags the judge has just opened (feeds the blocking-wave alert)."""
        self.flags_opened.labels(self.network(network), _check(method, METHODS, "method")).inc(n)

    def set_flags(self, flags: Iterable[FlagSeries]) -> None:
        """Replace the open-flag series with `flags`: flags absent from it are closed."""
        values: Samples = {}
        for network, service, category, method in flags:
            key = (
                self.network(network),
                service_label(service),
                _check(category, CATEGORIES, "category"),
                _check(method, METHODS, "method"),
            )
            values[key] = 1.0
        self._replace("flags_open", self.flags_open, values)

    def set_collateral(self, counts: Iterable[tuple[str | None, int, int]]) -> None:
        """Replace the collateral gauges with (network, blocked addresses, services behind)."""
        addresses: Samples = {}
        services: Samples = {}
        for network, n_addresses, n_services in counts:
            key = (self.network(network),)
            addresses[key] = addresses.get(key, 0) + n_addresses
            services[key] = services.get(key, 0) + n_services
        self._replace("collateral_addresses", self.collateral_addresses, addresses)
        self._replace("collateral_services", self.collateral_services, services)

    def set_census(self, counts: Iterable[tuple[int | None, str | None, int, int]]) -> None:
        """Replace the census gauges with (asn, network, blocked addresses, collateral domains);
        a network folded into "other" is counted under asn "other" too (bounded labels)."""
        blocked: Samples = {}
        collateral: Samples = {}
        for asn, network, n_addresses, n_domains in counts:
            label = self.network(network)
            key = (OTHER if label == OTHER else asn_label(asn), label)
            blocked[key] = blocked.get(key, 0) + n_addresses
            collateral[key] = collateral.get(key, 0) + n_domains
        self._replace("census_blocked_addresses", self.census_blocked_addresses, blocked)
        self._replace("census_collateral_domains", self.census_collateral_domains, collateral)

    def set_probes(self, counts: Iterable[tuple[str | None, int, int]]) -> None:
        """Replace the probe gauge with (network, live probes, silent probes) for every network."""
        values: Samples = {}
        for network, live, silent in counts:
            label = self.network(network)
            for status, n in zip(PROBE_STATUSES, (live, silent), strict=True):
                values[(label, status)] = values.get((label, status), 0) + n
        self._replace("probes", self.probes, values)

    def set_network_last_seen(self, seen: Iterable[tuple[str | None, float]]) -> None:
        """Replace the last-seen gauge with (network, unix time) pairs, e.g. read from the store."""
        values: Samples = {}
        for network, timestamp in seen:
            key = (self.network(network),)
            values[key] = max(values.get(key, 0.0), timestamp)
        self._last_seen = {key[0]: value for key, value in values.items()}
        self._replace("network_last_seen", self.network_last_seen, values)

    def network_seen(self, network: str | None, timestamp: float | None = None) -> None:
        """Move a network's last-seen time forward to `timestamp` (default: now)."""
        label = self.network(network)
        when = time.time() if timestamp is None else timestamp
        self._last_seen[label] = max(self._last_seen.get(label, 0.0), when)
        self.network_last_seen.labels(label).set(self._last_seen[label])
        self._series.setdefault("network_last_seen", set()).add((label,))

    def set_census_index_domains(self, n: int) -> None:
        """Set how many names the domain index holds."""
        self.census_index_domains.set(n)

    def census_resolved(self, result: str, n: int = 1) -> None:
        """Count ``n`` names of the domain index whose resolution ended with ``result``."""
        self.census_resolutions.labels(_check(result, CENSUS_RESULTS, "census result")).inc(n)

    def observe_control(self, ok: bool, seconds: float) -> None:
        """Count one control measurement and its duration."""
        self.control_requests.labels(CONTROL_STATUSES[0] if ok else CONTROL_STATUSES[1]).inc()
        self.control_duration.observe(seconds)

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request by its route's pattern (never the path asked), method and
        status code, and observe its duration."""
        route = route or UNMATCHED
        method = method if method in HTTP_METHODS else OTHER
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def observe_store(self, operation: str, seconds: float) -> None:
        """Record the duration of one store operation."""
        _check(operation, STORE_OPERATIONS, "store operation")
        self.store_duration.labels(operation).observe(seconds)

    @contextlib.contextmanager
    def time_store(self, operation: str) -> Iterator[None]:
        """Time the enclosed block as one store operation, whether it succeeds or raises."""
        _check(operation, STORE_OPERATIONS, "store operation")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_store(operation, time.perf_counter() - start)

    def _replace(self, name: str, gauge: prometheus_client.Gauge, values: Samples) -> None:
        """Set `values` on `gauge` and remove its other series, never leaving it empty between."""
        for key, value in values.items():
            gauge.labels(*key).set(value)
        for stale in self._series.get(name, set()) - values.keys():
            gauge.remove(*stale)
        self._series[name] = set(values)
