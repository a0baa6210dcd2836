"""The probe's configuration: its keys on the shared layer (probe/settings.py) -> dataclasses.

Every key is documented in configs/probe.example.yaml. Unknown keys and bad values raise
`ConfigError`, whose one-line message names the file (or "command line", or the environment
variable), the dotted key and the reason: ``probe.yaml: timeouts.dns: must be a positive number,
got 'abc'``. Relative paths in a file are taken from the file's directory; elsewhere, from the
working directory. Every key is also the variable SURBLOCAGE_PROBE_<KEY> (timeouts.dns:
SURBLOCAGE_PROBE_TIMEOUTS_DNS), which wins over the file and loses to the command line.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe import kinds, logs, resolvers, settings
from probe.kinds import Invalid
from probe.kinds import parse_resolver as parse_resolver
from probe.resolvers import ResolverPath
from probe.settings import ConfigError as ConfigError
from probe.settings import Key
from probe.watchlist import PACKAGED_WATCHLIST

Network = kinds.Network
parse_allow_networks = kinds.networks  # the probe's name for it, kept for its callers
MiB = 1024 * 1024
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROOT_STATE_DIR = Path("/var/lib/surblocage-probe")
LOOPS = ("asyncio", "auto", "uvloop")


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
    allow_insecure: bool = False  # http:// to a host that is not loopback


@dataclass(frozen=True)
class ControlConfig:
    url: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class DNSConfig:
    resolver: str | None = None  # one resolver path: a list of one
    resolvers: tuple[str, ...] | None = None  # the paths, primary first; wins over resolver
    # answered with the address of the resolver asking; None ("off"): no whoami lookup
    whoami: str | None = "whoami.akamai.net"

    def paths(self, system: Callable[[], str] | None = None) -> tuple[ResolverPath, ...]:
        """The resolver paths to measure: the list, else the one resolver, else the default
        (the system's and the public resolvers'); "system" filled from /etc/resolv.conf."""
        given = self.resolvers or ((self.resolver,) if self.resolver else resolvers.DEFAULT_PATHS)
        paths = resolvers.parse_paths(list(given))
        if not any(p.is_system for p in paths):
            return paths
        address, port = parse_resolver((system or system_resolver)())
        return tuple(p.with_system(address, port) for p in paths)


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
    quarantine_after: int = 5  # refusals in a row, with the same status, that set a record aside


@dataclass(frozen=True)
class CensusConfig:
    """The sweep of the addresses the collector publishes (GET /api/v1/addresses)."""

    enabled: bool = True
    rate: float = 20.0  # new connections a second
    max_addresses: int = 2000


@dataclass(frozen=True)
class DiagnosticsConfig:
    """The raw-socket diagnostics of blocked targets (probe/diagnostics, docs/spec.md)."""

    enabled: bool = True
    interval: float = 6 * 3600.0  # seconds: a target is diagnosed at most once in this long
    budget: int = 2000  # packets a cycle, every diagnosed target together
    pps: float = 20.0  # packets a second
    max_hops: int = 20
    # an address on the path that runs no resolver; None: the collector's address, else the
    # blocked service's own web address as the control sees it
    silent_address: str | None = None


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str | None = None  # node_exporter's textfile collector: rewritten at each beat


@dataclass(frozen=True)
class LogConfig:
    format: str = "text"
    level: str = "info"


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
    census: CensusConfig = field(default_factory=CensusConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    fingerprints: tuple[str, ...] = ()  # signature files added to the packaged ones
    # the event loop: "asyncio" (the standard library's), "auto" (uvloop when installed, the
    # extra surblocage[fast]), "uvloop" (required)
    loop: str = "asyncio"
    source: str | None = None  # the file this was read from


SECTIONS: dict[str, type] = {
    "collector": CollectorConfig, "control": ControlConfig, "dns": DNSConfig, "tls": TLSConfig,
    "network": NetworkConfig, "timeouts": TimeoutsConfig, "schedule": ScheduleConfig,
    "budget": BudgetConfig, "spool": SpoolConfig, "upload": UploadConfig,
    "census": CensusConfig, "diagnostics": DiagnosticsConfig, "metrics": MetricsConfig,
    "log": LogConfig,
}  # fmt: skip


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeConfig:
    """Read ``path`` (None: defaults only), then the environment (None: the process's), then
    the dotted-key ``overrides`` (None values skipped); check every value and build the config."""
    values = KEYS.load(path, overrides, environ)
    _derive(values)
    return _build(values.checked, values.file)


def _derive(values: settings.Values) -> None:
    """Fill the defaults that depend on other keys, and check keys against each other."""
    checked = values.checked
    collector = checked.get("collector.url")
    if collector and "control.url" not in checked:
        checked["control.url"] = collector.rstrip("/") + "/api/v1/control"
    if collector and not checked.get("collector.allow_insecure") and not secure_enough(collector):
        raise values.error("collector.url", INSECURE)
    checked.setdefault("watchlist", "collector" if collector else str(PACKAGED_WATCHLIST))
    if checked["watchlist"] == "collector" and not collector:
        raise values.error("watchlist", "'collector' needs collector.url")
    checked.setdefault("state_dir", default_state_dir())
    schedule = ScheduleConfig()
    interval = checked.get("schedule.interval_seconds", schedule.interval_seconds)
    if checked.get("schedule.jitter_seconds", schedule.jitter_seconds) >= interval:
        raise values.error("schedule.jitter_seconds", "must be less than schedule.interval_seconds")


INSECURE = (
    "http:// would send the probe's token and records in clear to a host that is not loopback: "
    "use https://, or set collector.allow_insecure: true"
)


def secure_enough(url: str) -> bool:
    """Tell whether ``url`` is https, or http to this machine (loopback: nothing on the wire)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _whoami(value: Any) -> str | None:
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    name = kinds.text(value).rstrip(".").lower()
    if not re.fullmatch(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{1,63}", name):
        raise ValueError(f"must be a domain name or off, got {value!r}")
    return name


def _address(value: Any) -> str:
    try:
        return ipaddress.ip_address(kinds.text(value)).compressed
    except ValueError:
        raise ValueError(f"must be an IP address, got {value!r}") from None


def _watchlist(value: Any) -> str:
    return "collector" if value == "collector" else kinds.file(value)


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
        raise Invalid(f'must be a time "HH:MM", got {value!r}', key)
    return datetime.time(int(m.group(1)), int(m.group(2)))


def _days(value: Any, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        first, _, last = str(item).lower().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise Invalid(f"{item!r} is not a day (mon..sun) or a range of days (mon-fri)", key)
        i, j = DAYS.index(first), DAYS.index(last or first)
        out += [DAYS[(i + n) % 7] for n in range((j - i) % 7 + 1)]
    return tuple(d for d in DAYS if d in out)


WINDOW_KEYS = ("days", "start", "end", "interval_seconds", "tz")


def _window(w: Any, key: str) -> BusyWindow:
    if not isinstance(w, dict):
        raise Invalid(f"expected a mapping with {', '.join(WINDOW_KEYS)}", key)
    for k in w:
        if k not in WINDOW_KEYS:
            raise Invalid(f"unknown key (known: {', '.join(WINDOW_KEYS)})", f"{key}.{k}")
    for k in ("start", "end", "interval_seconds"):
        if k not in w:
            raise Invalid("missing", f"{key}.{k}")
    start, end = _time(w["start"], f"{key}.start"), _time(w["end"], f"{key}.end")
    if start == end:
        raise Invalid("must differ from start", f"{key}.end")
    tz = w.get("tz", BusyWindow.tz)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        why = f"unknown time zone {tz!r} (IANA names, e.g. Europe/Paris)"
        raise Invalid(why, f"{key}.tz") from None
    try:
        interval = kinds.positive(w["interval_seconds"])
    except ValueError as e:
        raise Invalid(str(e), f"{key}.interval_seconds") from None
    return BusyWindow(start, end, interval, _days(w.get("days", list(DAYS)), f"{key}.days"), tz)


def _busy_windows(value: Any) -> tuple[BusyWindow, ...]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of windows, got {value!r}")
    return tuple(_window(w, f"[{i}]") for i, w in enumerate(value))


KEYS = settings.Table(
    "SURBLOCAGE_PROBE_",
    [
        Key("state_dir", lambda v: Path(kinds.text(v)), path=True),
        Key("collector.url", kinds.url),
        Key("collector.allow_insecure", kinds.boolean),
        Key("control.url", kinds.url),
        Key("control.enabled", kinds.boolean),
        Key("watchlist", _watchlist, path=True, words=("collector",)),
        Key("dns.resolver", resolvers.one_path),
        Key("dns.resolvers", resolvers.resolver_paths),
        Key("dns.whoami", _whoami),
        Key("tls.ca_file", kinds.file, path=True),
        Key("network.allow_networks", kinds.networks),
        Key("network.asn", kinds.number(1, 2**32 - 1, whole=True)),
        Key("network.name", kinds.text),
        Key("network.cc", _country),
        Key("timeouts.dns", kinds.positive),
        Key("timeouts.tcp", kinds.positive),
        Key("timeouts.tls", kinds.positive),
        Key("timeouts.http", kinds.positive),
        Key("timeouts.target", kinds.positive),
        Key("concurrency", kinds.number(1, 256, whole=True)),
        Key("schedule.interval_seconds", kinds.positive),
        Key("schedule.jitter_seconds", kinds.number(0)),
        Key("schedule.busy_windows", _busy_windows),
        Key("budget.max_bytes_per_cycle", _bytes),
        Key("spool.max_records", kinds.number(1, 10**9, whole=True)),
        Key("spool.max_age_days", kinds.positive),
        Key("upload.batch_size", kinds.number(1, 10_000, whole=True)),
        Key("upload.quarantine_after", kinds.number(1, 1000, whole=True)),
        Key("census.enabled", kinds.boolean),
        Key("census.rate", kinds.number(0.1, 1000)),
        Key("census.max_addresses", kinds.number(1, 100_000, whole=True)),
        Key("diagnostics.enabled", kinds.boolean),
        Key("diagnostics.interval", kinds.number(0)),
        Key("diagnostics.budget", kinds.number(0, 1_000_000, whole=True)),
        Key("diagnostics.pps", kinds.number(0.1, 1000)),
        Key("diagnostics.max_hops", kinds.number(1, 64, whole=True)),
        Key("diagnostics.silent_address", _address),
        Key("metrics.textfile", lambda v: str(Path(kinds.text(v))), path=True),
        Key("log.format", kinds.choice(*logs.FORMATS)),
        Key("log.level", kinds.choice(*logs.LEVELS)),
        Key("fingerprints", kinds.files, path=True),
        Key("loop", kinds.choice(*LOOPS)),
    ],
)
