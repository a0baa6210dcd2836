"""The probe's configuration: YAML and command-line overrides -> frozen dataclasses, checked.

Every key is documented in configs/probe.example.yaml. Unknown keys and bad values raise
`ConfigError`, whose one-line message names the file (or "command line"), the dotted key and the
reason: ``probe.yaml: timeouts.dns: must be a positive number, got 'abc'``. Relative paths in a
file are taken from the file's directory; on the command line, from the working directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probe.watchlist import PACKAGED_WATCHLIST

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MiB = 1024 * 1024
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
COMMAND_LINE = "command line"
ROOT_STATE_DIR = Path("/var/lib/surblocage-probe")


class ConfigError(Exception):
    """A configuration that cannot be used: names the file, the dotted key and the reason."""

    def __init__(self, file: str, key: str, why: str) -> None:
        super().__init__(f"{file}: {key}: {why}")
        self.file, self.key, self.why = file, key, why


class _Invalid(ValueError):
    """A bad value inside a key (``subkey`` such as "[0].start" completes the dotted key)."""

    def __init__(self, why: str, subkey: str = "") -> None:
        super().__init__(why)
        self.subkey = subkey


@dataclass(frozen=True)
class BusyWindow:
    """Hours when the probe measures more often (a live match: blocking starts at kick-off)."""

    start: datetime.time
    end: datetime.time  # before start: the window crosses midnight
    interval_seconds: float
    days: tuple[str, ...] = DAYS  # the days the window starts on
    tz: str = "Europe/Paris"

    def covers(self, when: datetime.datetime) -> bool:
        """Tell whether the (time-zone aware) moment ``when`` falls in this window."""
        local = when.astimezone(zoneinfo.ZoneInfo(self.tz))
        day, t = DAYS[local.weekday()], local.time()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return (day in self.days and t >= self.start) or (yesterday in self.days and t < self.end)


@dataclass(frozen=True)
class CollectorConfig:
    url: str | None = None


@dataclass(frozen=True)
class ControlConfig:
    url: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class DNSConfig:
    resolver: str | None = None  # None: the system's (system_resolver())


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = None


@dataclass(frozen=True)
class NetworkConfig:
    allow_networks: tuple[Network, ...] = ()
    asn: int | None = None
    name: str | None = None
    cc: str = "FR"


@dataclass(frozen=True)
class TimeoutsConfig:
    dns: float = 5.0
    tcp: float = 5.0
    tls: float = 5.0
    http: float = 10.0
    target: float = 30.0


@dataclass(frozen=True)
class ScheduleConfig:
    interval_seconds: float = 3600.0
    jitter_seconds: float = 300.0
    busy_windows: tuple[BusyWindow, ...] = ()

    def interval_at(self, when: datetime.datetime) -> float:
        """Return the cycle interval at ``when``: the first busy window's, else the usual one."""
        w = next((w for w in self.busy_windows if w.covers(when)), None)
        return w.interval_seconds if w else self.interval_seconds


@dataclass(frozen=True)
class BudgetConfig:
    max_bytes_per_cycle: int = 50 * MiB


@dataclass(frozen=True)
class SpoolConfig:
    max_records: int = 100_000
    max_age_days: float = 30.0


@dataclass(frozen=True)
class UploadConfig:
    batch_size: int = 100


@dataclass(frozen=True)
class LogConfig:
    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True)
class ProbeConfig:
    state_dir: Path
    watchlist: str  # "collector", or a watchlist file
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    concurrency: int = 8
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    log: LogConfig = field(default_factory=LogConfig)
    fingerprints: tuple[str, ...] = ()  # signature files added to the packaged ones
    source: str | None = None  # the file this was read from


SECTIONS: dict[str, type] = {
    "collector": CollectorConfig, "control": ControlConfig, "dns": DNSConfig, "tls": TLSConfig,
    "network": NetworkConfig, "timeouts": TimeoutsConfig, "schedule": ScheduleConfig,
    "budget": BudgetConfig, "spool": SpoolConfig, "upload": UploadConfig, "log": LogConfig,
}  # fmt: skip
PATH_KEYS = {"state_dir", "tls.ca_file", "watchlist", "fingerprints"}


def load_config(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None
) -> ProbeConfig:
    """Read ``path`` (None: defaults only), apply dotted-key ``overrides`` (None values skipped)."""
    file = str(path) if path is not None else COMMAND_LINE
    flat, origin = {}, {}
    if path is not None:
        flat = _resolve_paths(_flatten(_read_yaml(file), file), Path(path).parent)
        origin = dict.fromkeys(flat, file)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in given:
        if key not in FIELDS:
            raise ConfigError(COMMAND_LINE, key, _unknown(key))
    flat.update(_resolve_paths(given, Path.cwd()))
    origin.update(dict.fromkeys(given, COMMAND_LINE))
    values: dict[str, Any] = {}
    for key, raw in flat.items():
        if raw is None:
            continue
        try:
            values[key] = FIELDS[key](raw)
        except ValueError as e:
            raise ConfigError(origin[key], key + getattr(e, "subkey", ""), str(e)) from None
    _derive(values, lambda key, why: ConfigError(origin.get(key, file), key, why))
    return _build(values, None if path is None else file)


def _derive(values: dict[str, Any], error: Callable[[str, str], ConfigError]) -> None:
    """Fill the defaults that depend on other keys, and check keys against each other."""
    collector = values.get("collector.url")
    if collector and "control.url" not in values:
        values["control.url"] = collector.rstrip("/") + "/api/v1/control"
    default_watchlist = "collector" if collector else str(PACKAGED_WATCHLIST)
    values.setdefault("watchlist", default_watchlist)
    if values["watchlist"] == "collector" and not collector:
        raise error("watchlist", "'collector' needs collector.url")
    values.setdefault("state_dir", default_state_dir())
    schedule = ScheduleConfig()
    interval = values.get("schedule.interval_seconds", schedule.interval_seconds)
    if values.get("schedule.jitter_seconds", schedule.jitter_seconds) >= interval:
        raise error("schedule.jitter_seconds", "must be less than schedule.interval_seconds")


def _build(values: dict[str, Any], source: str | None) -> ProbeConfig:
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    top: dict[str, Any] = {}
    for key, value in values.items():
        head, _, tail = key.partition(".")
        if tail:
            sections[head][tail] = value
        else:
            top[head] = value
    parts = {name: cls(**sections[name]) for name, cls in SECTIONS.items()}
    return ProbeConfig(**top, **parts, source=source)


def default_state_dir(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """Return where the probe keeps its identity, token and spool when state_dir is not set.

    systemd's $STATE_DIRECTORY first (StateDirectory= in the unit), then /var/lib/surblocage-probe
    for root, then $XDG_STATE_HOME/surblocage-probe, by default ~/.local/state/surblocage-probe.
    """
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if (os.geteuid() if uid is None else uid) == 0:
        return ROOT_STATE_DIR
    base = env.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "surblocage-probe"


def system_resolver(path: str = "/etc/resolv.conf") -> str:
    """Return the first nameserver of the system's resolver configuration."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ConfigError(path, "file", f"cannot read it ({e.strerror})") from None
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                return ipaddress.ip_address(words[1]).compressed
            except ValueError:
                raise ConfigError(path, "nameserver", f"{words[1]!r} is not an address") from None
    raise ConfigError(path, "nameserver", "no nameserver line")


def parse_resolver(text: str) -> tuple[str, int]:
    """Parse "IP", "IP:PORT" or "[IPv6]:PORT" into (address, port); raise ValueError(why)."""
    if not isinstance(text, str):
        raise ValueError(f"expected IP, IP:PORT or [IPv6]:PORT, got {text!r}")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+):(\d+)|([^\[\]]+)", text.strip())
    if m is None:
        raise ValueError(f"expected IP, IP:PORT or [IPv6]:PORT, got {text!r}")
    host = m.group(1) or m.group(3) or m.group(5)
    port = int(m.group(2) or m.group(4) or 53)
    try:
        address = ipaddress.ip_address(host).compressed
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not from 1 to 65535")
    return address, port


def parse_allow_networks(items: Iterable[Any]) -> tuple[Network, ...]:
    """Parse CIDR strings into networks; raise ValueError naming the bad item."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list | tuple):
        raise ValueError(f"must be a list of networks (CIDR), got {items!r}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(ipaddress.ip_network(str(item).strip()))
        except ValueError as e:
            raise _Invalid(f"{item!r} is not a network ({e})", f"[{i}]") from None
    return tuple(out)


# ---------------------------------------------------------------- reading and converting values


class _Loader(yaml.SafeLoader):
    """YAML 1.1 without base-60 integers: ``start: 20:45`` stays a time, not 1245."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:int"]
    for first, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def _read_yaml(file: str) -> dict[str, Any]:
    try:
        data = yaml.load(Path(file).read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(file, "file", f"cannot read it ({e})") from None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError(file, f"line {line}", str(e.problem)) from None
    except yaml.YAMLError as e:
        raise ConfigError(file, "file", f"not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(file, "file", "expected a mapping of keys")
    return data


def _flatten(data: dict[str, Any], file: str) -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(file, str(key), "expected a mapping of keys")
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[str(key)] = value
    for key in flat:
        if key not in FIELDS:
            raise ConfigError(file, key, _unknown(key))
    return flat


def _unknown(key: str) -> str:
    head, _, tail = key.partition(".")
    if tail and head in SECTIONS:
        known = [k for k in FIELDS if k.startswith(head + ".")]
    else:
        known = list(dict.fromkeys(k.split(".")[0] for k in FIELDS))
    return f"unknown key (known: {', '.join(known)})"


def _resolve_paths(flat: dict[str, Any], base: Path) -> dict[str, Any]:
    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or value == "collector":
            return value
        return str(base / Path(value).expanduser())  # an absolute path wins over base

    out = dict(flat)
    for key in PATH_KEYS & out.keys():
        value = out[key]
        out[key] = [resolve(v) for v in value] if isinstance(value, list) else resolve(value)
    return out


def _number(
    low: float, high: float = math.inf, whole: bool = False, positive: bool = False
) -> Callable[[Any], Any]:
    """Return a converter to a number from ``low`` to ``high`` (above 0 if ``positive``)."""
    what = "a positive number" if positive else f"a number, {low} or more"
    what = f"a whole number from {low} to {high}" if whole else what

    def convert(value: Any) -> float | int:
        try:
            x = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            x = math.nan
        low_ok = x > 0 if positive else x >= low
        if not (math.isfinite(x) and low_ok and x <= high and (not whole or x == int(x))):
            raise ValueError(f"must be {what}, got {value!r}")
        return int(x) if whole else x

    return convert


_positive = _number(0, positive=True)


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in [o.lower() for o in options]:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return next(o for o in options if o.lower() == value.lower())

    return convert


def _bool(value: Any) -> bool:
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in words:
        return words[value.lower()]
    raise ValueError(f"must be true or false, got {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _url(value: Any) -> str:
    parts = urllib.parse.urlsplit(_text(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http or https URL, got {value!r}")
    return _text(value)


def _file(value: Any) -> str:
    if not Path(_text(value)).is_file():
        raise ValueError(f"no such file: {value}")
    return _text(value)


def _files(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        try:
            _file(item)
        except ValueError as e:
            raise _Invalid(str(e), f"[{i}]") from None
    return tuple(items)


def _watchlist(value: Any) -> str:
    return "collector" if value == "collector" else _file(value)


def _resolver(value: Any) -> str:
    parse_resolver(value)
    return str(value).strip()


def _country(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError(f"must be a 2-letter country code, got {value!r}")
    return value.upper()


def _bytes(value: Any) -> int:
    units = {"": 1, "b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9,
             "kib": 1024, "mib": MiB, "gib": 1024 * MiB}  # fmt: skip
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(value).lower())
    if isinstance(value, bool) or m is None or m.group(2) not in units:
        raise ValueError(f"must be a size in bytes (e.g. 52428800 or '50 MiB'), got {value!r}")
    size = int(float(m.group(1)) * units[m.group(2)])
    if size <= 0:
        raise ValueError(f"must be more than 0 bytes, got {value!r}")
    return size


def _time(value: Any, key: str) -> datetime.time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip()) if isinstance(value, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise _Invalid(f'must be a time "HH:MM", got {value!r}', key)
    return datetime.time(int(m.group(1)), int(m.group(2)))


def _days(value: Any, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        first, _, last = str(item).lower().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise _Invalid(f"{item!r} is not a day (mon..sun) or a range of days (mon-fri)", key)
        i, j = DAYS.index(first), DAYS.index(last or first)
        out += [DAYS[(i + n) % 7] for n in range((j - i) % 7 + 1)]
    return tuple(d for d in DAYS if d in out)


WINDOW_KEYS = ("days", "start", "end", "interval_seconds", "tz")


def _window(w: Any, key: str) -> BusyWindow:
    if not isinstance(w, dict):
        raise _Invalid(f"expected a mapping with {', '.join(WINDOW_KEYS)}", key)
    for k in w:
        if k not in WINDOW_KEYS:
            raise _Invalid(f"unknown key (known: {', '.join(WINDOW_KEYS)})", f"{key}.{k}")
    for k in ("start", "end", "interval_seconds"):
        if k not in w:
            raise _Invalid("missing", f"{key}.{k}")
    start, end = _time(w["start"], f"{key}.start"), _time(w["end"], f"{key}.end")
    if start == end:
        raise _Invalid("must differ from start", f"{key}.end")
    tz = w.get("tz", BusyWindow.tz)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        why = f"unknown time zone {tz!r} (IANA names, e.g. Europe/Paris)"
        raise _Invalid(why, f"{key}.tz") from None
    try:
        interval = _positive(w["interval_seconds"])
    except ValueError as e:
        raise _Invalid(str(e), f"{key}.interval_seconds") from None
    return BusyWindow(start, end, interval, _days(w.get("days", list(DAYS)), f"{key}.days"), tz)


def _busy_windows(value: Any) -> tuple[BusyWindow, ...]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of windows, got {value!r}")
    return tuple(_window(w, f"[{i}]") for i, w in enumerate(value))


FIELDS: dict[str, Callable[[Any], Any]] = {
    "state_dir": lambda v: Path(_text(v)),
    "collector.url": _url,
    "control.url": _url,
    "control.enabled": _bool,
    "watchlist": _watchlist,
    "dns.resolver": _resolver,
    "tls.ca_file": _file,
    "network.allow_networks": parse_allow_networks,
    "network.asn": _number(1, 2**32 - 1, whole=True),
    "network.name": _text,
    "network.cc": _country,
    "timeouts.dns": _positive,
    "timeouts.tcp": _positive,
    "timeouts.tls": _positive,
    "timeouts.http": _positive,
    "timeouts.target": _positive,
    "concurrency": _number(1, 256, whole=True),
    "schedule.interval_seconds": _positive,
    "schedule.jitter_seconds": _number(0),
    "schedule.busy_windows": _busy_windows,
    "budget.max_bytes_per_cycle": _bytes,
    "spool.max_records": _number(1, 10**9, whole=True),
    "spool.max_age_days": _positive,
    "upload.batch_size": _number(1, 10_000, whole=True),
    "log.format": _choice("text", "json"),
    "log.level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    "fingerprints": _files,
}
