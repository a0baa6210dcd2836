"""The collector's configuration: its keys on the shared layer (probe/settings.py) -> a dataclass.

Every key is documented in configs/collector.example.yaml (a test loads that file). Bad input
stops the collector with one `ConfigError`, ``<file>: <key>: <why>``. Every key is also the
variable SURBLOCAGE_COLLECTOR_<KEY> (log.level: SURBLOCAGE_COLLECTOR_LOG_LEVEL), which wins over
the file; command-line options arrive as dotted-key overrides and win over both.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probe import kinds, logs, settings
from probe.settings import ConfigError as ConfigError
from probe.settings import Key

DEFAULT_DB = "sqlite:///var/surblocage/collector.db"


@dataclass(frozen=True)
class CollectorConfig:
    listen: str = "127.0.0.1:8080"
    database_url: str = DEFAULT_DB
    watchlist: str | None = None
    fingerprints: tuple[str, ...] = ()
    control_resolver: str | None = None
    control_enabled: bool = True
    control_concurrency: int = 16
    control_cache_seconds: float = 60.0
    control_max_targets: int = 20
    control_public: bool = False
    control_rate_per_probe_per_minute: int = 60
    control_rate_per_minute: int = 600
    control_addresses_per_family: int = 8
    control_connections_per_request: int = 32
    control_connections_in_flight: int = 256
    control_dials_per_request: int = 512
    ca_file: str | None = None
    allow_networks: tuple[str, ...] = ()
    asn_database: str | None = None
    enrollment_key: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 1000
    rate_per_probe_per_minute: int = 120
    rate_per_source_per_minute: int = 600
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_connections: int = 1024
    max_connections_per_client: int = 32
    max_registration_bytes: int = 4096
    max_control_bytes: int = 64 * 1024
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    token_ttl_seconds: float = 30 * 24 * 3600
    token_grace_seconds: float = 24 * 3600
    silent_after_seconds: float = 2 * 3600
    max_record_age_seconds: float = 7 * 86400
    min_probe_age_seconds: float = 3600.0
    min_networks: int = 1
    source_prefix_v4: int = 24
    source_prefix_v6: int = 48
    census_enabled: bool = True
    census_refresh_seconds: float = 24 * 3600
    census_qps: float = 100.0
    census_resolver: str | None = None  # None: control.resolver, else the system's
    census_addresses_per_cycle: int = 2000
    census_vantage_max_age_seconds: float = 3600.0
    census_vantage_rate: float = 50.0
    log_format: str = "text"
    log_level: str = "info"


def load_config(
    path: str | None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> CollectorConfig:
    """Read ``path`` (None: defaults only), then the environment (None: the process's), then
    the dotted-key ``overrides``; check every value and build the config."""
    values = KEYS.load(path, overrides, environ)
    return CollectorConfig(**{KEYS.keys[k].field: v for k, v in values.checked.items()})


def _hostport(value: Any) -> str:
    host, _, port = kinds.text(value).rpartition(":")
    # port 0: any free port, announced in the "collector listening" log line
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    return kinds.text(value)


def _database_url(value: Any) -> str:
    if not kinds.text(value).startswith(("sqlite:///", "postgresql://", "postgresql+")):
        raise ValueError(f"must be sqlite:///PATH or postgresql://..., got {value!r}")
    return kinds.text(value)


def _networks(value: Any) -> tuple[str, ...]:
    """CIDR networks, host bits allowed (10.0.0.1/8 is 10.0.0.0/8), kept as text."""
    return tuple(str(n) for n in kinds.networks(value, strict=False))


def _origin(value: Any) -> str:
    """One web origin as browsers send it (RFC 6454): scheme://host[:port], nothing after; or *."""
    origin = kinds.text(value)
    if origin == "*":
        return origin
    try:
        parts = urllib.parse.urlsplit(origin)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or origin != origin.lower()
    ):
        raise ValueError(f"must be * or an origin like https://example.org[:port], got {value!r}")
    return origin


def _origins(value: Any) -> tuple[str, ...]:
    """A list of origins (or one)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        try:
            out.append(_origin(item))
        except ValueError as e:
            raise kinds.Invalid(str(e), f"[{i}]") from None
    return tuple(out)


_count = kinds.number(1, whole=True)

KEYS = settings.Table(
    "SURBLOCAGE_COLLECTOR_",
    [
        Key("listen", _hostport),
        Key("database.url", _database_url),
        Key("watchlist", kinds.file),
        Key("fingerprints", kinds.files),
        Key("control.resolver", kinds.resolver),
        Key("control.enabled", kinds.boolean),
        Key("control.concurrency", _count),
        Key("control.cache_seconds", kinds.number(0)),
        Key("control.max_targets", _count),
        Key("control.public", kinds.boolean),
        Key("control.rate_per_probe_per_minute", _count),
        Key("control.rate_per_minute", _count),
        Key("control.addresses_per_family", _count),
        Key("control.connections_per_request", _count),
        Key("control.connections_in_flight", _count),
        Key("control.dials_per_request", _count),
        Key("tls.ca_file", kinds.file, attr="ca_file"),
        Key("network.allow_networks", _networks, attr="allow_networks"),
        Key("asn.database", kinds.file),
        Key("auth.enrollment_key", kinds.text, attr="enrollment_key"),
        Key("auth.token_ttl", kinds.positive, attr="token_ttl_seconds"),
        Key("auth.token_grace", kinds.number(0), attr="token_grace_seconds"),
        Key("server.header_timeout_seconds", kinds.positive, attr="header_timeout_seconds"),
        Key("server.body_timeout_seconds", kinds.positive, attr="body_timeout_seconds"),
        Key("server.max_connections", _count, attr="max_connections"),
        Key("server.max_connections_per_client", _count, attr="max_connections_per_client"),
        Key("server.trusted_proxies", _networks, attr="trusted_proxies"),
        Key("api.cors_origins", _origins, attr="cors_origins"),
        Key("limits.max_registration_bytes", _count, attr="max_registration_bytes"),
        Key("limits.max_control_bytes", _count, attr="max_control_bytes"),
        Key("limits.max_body_bytes", _count, attr="max_body_bytes"),
        Key("limits.max_batch_records", _count, attr="max_batch_records"),
        Key("limits.rate_per_probe_per_minute", _count, attr="rate_per_probe_per_minute"),
        Key("limits.rate_per_source_per_minute", _count, attr="rate_per_source_per_minute"),
        Key("probes.silent_after_seconds", kinds.positive, attr="silent_after_seconds"),
        Key("ingest.max_record_age_seconds", kinds.positive, attr="max_record_age_seconds"),
        Key("flags.min_probe_age_seconds", kinds.number(0), attr="min_probe_age_seconds"),
        Key("flags.min_networks", _count, attr="min_networks"),
        Key("flags.source_prefix_v4", kinds.number(8, 32, whole=True), attr="source_prefix_v4"),
        Key("flags.source_prefix_v6", kinds.number(16, 128, whole=True), attr="source_prefix_v6"),
        Key("census.enabled", kinds.boolean),
        Key("census.refresh", kinds.positive, attr="census_refresh_seconds"),
        Key("census.qps", kinds.positive),
        Key("census.resolver", kinds.resolver),
        Key("census.addresses_per_cycle", kinds.number(1, 100_000, whole=True)),
        Key("census.vantage_max_age_seconds", kinds.positive),
        Key("census.vantage_rate", kinds.positive),
        Key("log.format", kinds.choice(*logs.FORMATS)),
        Key("log.level", kinds.choice(*logs.LEVELS)),
    ],
)
