"""The watchlist (docs/spec.md): YAML or JSON -> validated services -> targets; pure.

The probe and the collector both read it, and a watchlist fetched from the network is untrusted
input (DESIGN.md "Safety of volunteers"): only http/https URLs, no user info, a valid port, and no
IP literal outside public space unless the caller allows its network. Every error is a
`WatchlistError` whose one-line message names the source, the key and the reason:
``watchlist.yaml: services[3].urls[0]: not an http or https URL``.

One key is added to SPEC's format: ``dns_only: true`` marks a positive control (a name blocked on
purpose, to calibrate each network's block signature) that must be resolved and never fetched.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import yaml

from probe import addresses
from probe.record import CATEGORIES, Target

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ID_RE = re.compile(r"[a-z0-9_-]+")
LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")  # LDH, and '_' that CDNs use
COUNTRY_RE = re.compile(r"[A-Z]{2}|INT")  # ISO 3166 alpha-2, or INT for a global service
SERVICE_KEYS = {"id", "name", "category", "urls", "country", "notes", "dns_only"}
# configs/ sits next to the package in the source tree (the editable install); see the report
# shipped inside the package (configs/watchlist.yaml links here), so a wheel carries it
PACKAGED_WATCHLIST = Path(__file__).resolve().parent / "data" / "watchlist.yaml"


class WatchlistError(ValueError):
    """A watchlist (or a target given on the command line) that cannot be measured safely."""

    def __init__(self, source: str, key: str, why: str) -> None:
        super().__init__(f"{source}: {key}: {why}")
        self.source, self.key, self.why = source, key, why


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    category: str
    urls: tuple[str, ...]
    country: str | None = None
    notes: str | None = None
    dns_only: bool = False

    def targets(self) -> list[Target]:
        """Return one target per URL of this service."""
        return [Target(self.id, url, _host_of(url), self.category) for url in self.urls]


@dataclass(frozen=True)
class Watchlist:
    services: tuple[Service, ...]

    def targets(self) -> list[Target]:
        """Return one target per URL, services in file order."""
        return [t for s in self.services for t in s.targets()]

    def service(self, service_id: str) -> Service | None:
        """Return the service with this id, or None."""
        return next((s for s in self.services if s.id == service_id), None)

    def is_dns_only(self, target: Target) -> bool:
        """Tell whether this target belongs to a DNS-only positive control."""
        s = self.service(target.service)
        return s is not None and s.dns_only


def load_watchlist(path: str | Path, allow_networks: Sequence[Network] = ()) -> Watchlist:
    """Read and validate a watchlist file (YAML, or its JSON form)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WatchlistError(str(path), "file", f"cannot read it ({e})") from None
    return parse_watchlist(text, str(path), allow_networks)


def parse_watchlist(data: Any, source: str, allow_networks: Sequence[Network] = ()) -> Watchlist:
    """Validate a watchlist given as text (YAML or JSON) or as decoded data."""
    if isinstance(data, str | bytes):
        data = _parse_text(data, source)
    if not isinstance(data, dict):
        raise WatchlistError(source, "services", "expected a mapping with the key 'services'")
    for k in data:
        if k != "services":
            raise WatchlistError(source, str(k), "unknown key (known: services)")
    items = data.get("services")
    if not isinstance(items, list) or not items:
        raise WatchlistError(source, "services", "expected a non-empty list of services")
    services = [
        _service(item, source, f"services[{i}]", allow_networks) for i, item in enumerate(items)
    ]
    seen: set[str] = set()
    for i, s in enumerate(services):
        if s.id in seen:
            raise WatchlistError(source, f"services[{i}].id", f"duplicate id {s.id!r}")
        seen.add(s.id)
    return Watchlist(tuple(services))


def watchlist_to_dict(wl: Watchlist) -> dict[str, Any]:
    """Return the watchlist in its JSON form (what GET /api/v1/watchlist serves)."""
    out = []
    for s in wl.services:
        d: dict[str, Any] = {
            "id": s.id,
            "name": s.name,
            "category": s.category,
            "urls": list(s.urls),
        }
        d.update({k: v for k, v in (("country", s.country), ("notes", s.notes)) if v is not None})
        if s.dns_only:
            d["dns_only"] = True
        out.append(d)
    return {"services": out}


def target_from_input(text: str, allow_networks: Sequence[Network] = ()) -> Target:
    """Turn a command-line argument (a domain or an http(s) URL) into a target."""
    raw = text.strip()
    url = raw if "://" in raw else f"https://{raw}"
    try:
        url = normalize_url(url, allow_networks)
    except ValueError as e:
        raise WatchlistError("input", repr(text), str(e)) from None
    domain = _host_of(url)
    return Target(service=domain, url=url, domain=domain, category="general")


def normalize_url(url: str, allow_networks: Sequence[Network] = ()) -> str:
    """Return ``url`` with its host lower-cased and IDNA-encoded, or raise ValueError(why)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a valid URL ({e})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http or https URL")
    if "@" in parts.netloc:
        raise ValueError("must not carry user info (user:password@)")
    if port == 0:
        raise ValueError("port 0 is not a port")
    host = _host(parts.hostname, allow_networks)
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port is not None else ""
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), netloc, parts.path or "/", parts.query, "")
    )


def _host(host: str, allow_networks: Sequence[Network]) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return domain(host)
    # loopback and unspecified are never measured, whatever is allowed (--allow-network)
    if addresses.always_anomalous(host):
        raise ValueError(f"{host} is a loopback or unspecified address")
    if not addresses.is_connectable(host, allow_networks):
        raise ValueError(f"{host} is not a public address (allow its network to measure it)")
    return ip.compressed


def domain(host: str) -> str:
    """Return ``host`` as a public host name (lower case, no final dot); ValueError otherwise."""
    try:
        name = dns.name.from_unicode(host.rstrip("."))
    except (dns.exception.DNSException, UnicodeError) as e:
        raise ValueError(f"{host!r} is not a valid host name ({e})") from None
    text = name.to_text(omit_final_dot=True).lower()
    if not all(LABEL_RE.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"{host!r} is not a valid host name (letters, digits, '-' only)")
    if "." not in text or text == "localhost" or text.endswith(".localhost"):
        raise ValueError(f"{host!r} is not a public host name")
    return text


def _host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _parse_text(text: str | bytes, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise WatchlistError(source, f"line {line}", str(e.problem)) from None
    except yaml.YAMLError as e:
        raise WatchlistError(source, "file", f"not valid YAML ({e})") from None


def _service(item: Any, source: str, key: str, allow_networks: Sequence[Network]) -> Service:
    if not isinstance(item, dict):
        raise WatchlistError(source, key, "expected a mapping")
    for k in item:
        if k not in SERVICE_KEYS:
            raise WatchlistError(source, f"{key}.{k}", f"unknown key (known: {_known()})")
    for k in ("id", "name", "category", "urls"):
        if k not in item:
            raise WatchlistError(source, f"{key}.{k}", "missing")
    sid, name = _text(item, "id", source, key), _text(item, "name", source, key)
    if not ID_RE.fullmatch(sid):
        raise WatchlistError(source, f"{key}.id", f"{sid!r} does not match [a-z0-9_-]+")
    if item["category"] not in CATEGORIES:
        raise WatchlistError(
            source, f"{key}.category", f"{item['category']!r} is not one of {', '.join(CATEGORIES)}"
        )
    country = _optional_text(item, "country", source, key)
    if country is not None and not COUNTRY_RE.fullmatch(country):
        raise WatchlistError(source, f"{key}.country", f"{country!r} is not a country code")
    dns_only = item.get("dns_only", False)
    if not isinstance(dns_only, bool):
        raise WatchlistError(source, f"{key}.dns_only", f"expected true or false, got {dns_only!r}")
    urls = _urls(item["urls"], source, f"{key}.urls", allow_networks)
    return Service(
        sid,
        name,
        item["category"],
        urls,
        country,
        _optional_text(item, "notes", source, key),
        dns_only,
    )


def _urls(value: Any, source: str, key: str, allow_networks: Sequence[Network]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise WatchlistError(source, key, "expected a non-empty list of URLs")
    out = []
    for i, url in enumerate(value):
        if not isinstance(url, str):
            raise WatchlistError(source, f"{key}[{i}]", "not an http or https URL")
        try:
            out.append(normalize_url(url, allow_networks))
        except ValueError as e:
            raise WatchlistError(source, f"{key}[{i}]", str(e)) from None
    return tuple(out)


def _text(item: dict[str, Any], k: str, source: str, key: str) -> str:
    value = item[k]
    if not isinstance(value, str) or not value.strip():
        raise WatchlistError(source, f"{key}.{k}", f"expected a non-empty string, got {value!r}")
    return value


def _optional_text(item: dict[str, Any], k: str, source: str, key: str) -> str | None:
    return None if item.get(k) is None else _text(item, k, source, key)


def _known() -> str:
    return ", ".join(sorted(SERVICE_KEYS))
