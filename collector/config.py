"""The collector's YAML configuration -> CollectorConfig; bad input -> ConfigError(file, key, why).

Every key is documented in configs/collector.example.yaml (a test loads that file). Command-line
options arrive as dotted-key overrides and win over the file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

import yaml

DEFAULT_DB = "sqlite:///var/surblocage/collector.db"


class ConfigError(Exception):
    """A configuration value at fault: str() is one line, '<file>: <key>: <why>'."""

    def __init__(self, file: str, key: str, why: str) -> None:
        super().__init__(f"{file}: {key}: {why}")
        self.file, self.key, self.why = file, key, why


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
    ca_file: str | None = None
    allow_networks: tuple[str, ...] = ()
    asn_database: str | None = None
    enrollment_key: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 1000
    rate_per_probe_per_minute: int = 120
    rate_per_source_per_minute: int = 600
    silent_after_seconds: float = 2 * 3600
    log_format: str = "text"
    log_level: str = "info"


# dotted YAML key -> (dataclass field, type check)
KEYS: dict[str, tuple[str, str]] = {
    "listen": ("listen", "hostport"),
    "database.url": ("database_url", "dburl"),
    "watchlist": ("watchlist", "file"),
    "fingerprints": ("fingerprints", "files"),
    "control.resolver": ("control_resolver", "str"),
    "control.enabled": ("control_enabled", "bool"),
    "control.concurrency": ("control_concurrency", "int"),
    "control.cache_seconds": ("control_cache_seconds", "float0"),
    "control.max_targets": ("control_max_targets", "int"),
    "tls.ca_file": ("ca_file", "file"),
    "network.allow_networks": ("allow_networks", "cidrs"),
    "asn.database": ("asn_database", "file"),
    "auth.enrollment_key": ("enrollment_key", "str"),
    "limits.max_body_bytes": ("max_body_bytes", "int"),
    "limits.max_batch_records": ("max_batch_records", "int"),
    "limits.rate_per_probe_per_minute": ("rate_per_probe_per_minute", "int"),
    "limits.rate_per_source_per_minute": ("rate_per_source_per_minute", "int"),
    "probes.silent_after_seconds": ("silent_after_seconds", "float"),
    "log.format": ("log_format", "logfmt"),
    "log.level": ("log_level", "loglevel"),
}


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> CollectorConfig:
    """Load ``path`` (or defaults when None), apply dotted-key overrides, validate everything."""
    values: dict[str, Any] = {}
    source = path or "<defaults>"
    if path is not None:
        values = _flatten(_read_yaml(path), "", path)
    for key, value in (overrides or {}).items():
        values[key] = value
        source = path or "<command line>"
    kwargs = {}
    for key, value in values.items():
        if key not in KEYS:
            raise ConfigError(source, key, f"unknown key (known: {', '.join(sorted(KEYS))})")
        name, kind = KEYS[key]
        kwargs[name] = _check(source, key, kind, value)
    return CollectorConfig(**kwargs)


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError(path, "-", f"cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        raise ConfigError(path, where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, "-", "the top level must be a mapping of keys")
    return data


def _flatten(data: dict[str, Any], prefix: str, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if v is None and any(k.startswith(key + ".") for k in KEYS):
            continue  # a section whose keys are all commented out
        if isinstance(v, dict) and key not in KEYS:
            out.update(_flatten(v, key + ".", path))
        else:
            out[key] = v
    return out


def _check(src: str, key: str, kind: str, v: Any) -> Any:
    if kind in ("str", "hostport", "dburl", "file", "logfmt", "loglevel"):
        if not isinstance(v, str) or not v:
            raise ConfigError(src, key, f"must be a non-empty string, got {v!r}")
    if kind == "hostport":
        host, _, port = v.rpartition(":")
        # port 0: any free port, announced in the "collector listening" log line
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(src, key, f"must be HOST:PORT, got {v!r}")
    elif kind == "dburl" and not v.startswith(("sqlite:///", "postgresql://", "postgresql+")):
        raise ConfigError(src, key, f"must be sqlite:///PATH or postgresql://..., got {v!r}")
    elif kind == "file" and not os.path.isfile(os.path.expanduser(v)):
        raise ConfigError(src, key, f"no such file: {v}")
    elif kind == "files":
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            raise ConfigError(src, key, "must be a file path or a list of them")
        return tuple(_check(src, key, "file", i) for i in items)
    elif kind == "cidrs":
        return _cidrs(src, key, v)
    elif kind == "bool" and not isinstance(v, bool):
        raise ConfigError(src, key, f"must be true or false, got {v!r}")
    elif kind == "int" and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
        raise ConfigError(src, key, f"must be a positive whole number, got {v!r}")
    elif kind in ("float", "float0"):
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or v < 0
            or (kind == "float" and v == 0)
        ):
            raise ConfigError(src, key, f"must be a positive number, got {v!r}")
        return float(v)
    elif kind == "logfmt" and v not in ("text", "json"):
        raise ConfigError(src, key, f"must be text or json, got {v!r}")
    elif kind == "loglevel" and v.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(src, key, f"must be debug, info, warning or error, got {v!r}")
    return v


def _cidrs(src: str, key: str, v: Any) -> tuple[str, ...]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list | tuple):
        raise ConfigError(src, key, "must be a list of CIDR networks")
    for item in items:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ConfigError(src, key, f"not a CIDR network: {item!r}") from None
    return tuple(str(i) for i in items)
