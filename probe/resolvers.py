"""Resolver paths: the resolvers a probe asks, how it reaches each (UDP, DoT, DoH), their names.

A path is written ``[NAME=]IP[:PORT]`` (DNS over UDP, TCP on truncation), ``[NAME=]tls://IP[:PORT]
[#HOSTNAME]`` (DNS over TLS, RFC 7858), ``[NAME=]https://HOST[:PORT]/PATH`` (DNS over HTTPS, RFC
8484) or ``[NAME=]system`` (UDP to the first nameserver of /etc/resolv.conf). The first path of a
list is the primary: its answers drive the TCP, TLS and HTTP steps.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, replace
from typing import Any

from probe.kinds import Invalid, parse_resolver
from probe.record import MAX_PATHS

TRANSPORTS = ("udp", "dot", "doh")
SYSTEM = "system"
DOT_PORT = 853
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# the public resolvers under French blocking orders (background-france.md §1.5), reached over
# their addresses (DoH included: no lookup of the DoH host through the line's own resolver)
DEFAULT_PATHS = (
    "system",
    "google=8.8.8.8",
    "google_doh=https://8.8.8.8/dns-query",
    "cloudflare=1.1.1.1",
    "cloudflare_doh=https://1.1.1.1/dns-query",
    "quad9=9.9.9.9",
    "quad9_doh=https://9.9.9.9/dns-query",
)
FORMS = "[NAME=]IP[:PORT], [NAME=]tls://IP[:PORT][#HOSTNAME], [NAME=]https://HOST/PATH or system"


@dataclass(frozen=True)
class ResolverPath:
    """One way to a resolver: its name in the record, the transport and where it listens."""

    name: str
    transport: str  # one of TRANSPORTS
    address: str = ""  # the resolver's IP (udp, dot); "" for the system's until resolved
    port: int = 53
    hostname: str | None = None  # the TLS name checked on a DoT certificate (None: not checked)
    url: str | None = None  # the DoH endpoint

    @property
    def text(self) -> str:
        """The resolver as the record's ``dns[].resolver`` and ``probe.resolver`` show it."""
        if self.transport == "doh":
            return self.url or ""
        if self.is_system:
            return SYSTEM  # until with_system fills the address in
        host = f"[{self.address}]" if ":" in self.address else self.address
        if self.transport == "dot":
            port = "" if self.port == DOT_PORT else f":{self.port}"
            return f"tls://{host}{port}" + (f"#{self.hostname}" if self.hostname else "")
        return self.address if self.port == 53 else f"{host}:{self.port}"

    def with_system(self, address: str, port: int = 53) -> ResolverPath:
        """Return this path with the system resolver's address filled in."""
        return replace(self, address=address, port=port) if self.is_system else self

    @property
    def is_system(self) -> bool:
        return self.transport == "udp" and not self.address


def parse_path(value: Any) -> ResolverPath:
    """Parse one resolver path; raise ValueError naming what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected {FORMS}, got {value!r}")
    text = value.strip()
    name, sep, rest = text.partition("=")
    if not sep or "/" in name or ":" in name:  # no NAME= prefix ("=" may sit in a DoH query)
        name, rest = "", text
    elif not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a path name (letters, digits, _ . -, 32 at most)")
    if rest == SYSTEM:
        return ResolverPath(name=name or SYSTEM, transport="udp", address="")
    if rest.startswith("tls://"):
        path = _dot(rest)
    elif rest.startswith("https://"):
        path = _doh(rest)
    elif "://" in rest:
        raise ValueError(f"{rest!r}: only tls:// and https:// resolvers are known")
    else:
        address, port = parse_resolver(rest)
        path = ResolverPath(name="", transport="udp", address=address, port=port)
    return replace(path, name=name or path.text)


def _dot(text: str) -> ResolverPath:
    where, _, hostname = text.removeprefix("tls://").partition("#")
    if "/" in where or "?" in where:
        raise ValueError(f"{text!r}: expected tls://IP[:PORT][#HOSTNAME]")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?|([0-9a-fA-F:]+)", where)
    if m is None:
        raise ValueError(f"{text!r}: expected tls://IP[:PORT][#HOSTNAME]")
    address, port = parse_resolver(where if m.group(5) is None else f"[{where}]")
    if m.group(2) is None and m.group(4) is None:
        port = DOT_PORT
    if hostname and not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", hostname):
        raise ValueError(f"{text!r}: {hostname!r} is not a host name")
    return ResolverPath(
        name="", transport="dot", address=address, port=port, hostname=hostname or None
    )


def _doh(text: str) -> ResolverPath:
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port or 443
    except ValueError as e:
        raise ValueError(f"{text!r} is not a URL ({e})") from None
    if not parts.hostname or parts.fragment or len(text) > 512 or any(c.isspace() for c in text):
        raise ValueError(f"{text!r}: expected https://HOST[:PORT]/PATH")
    if parts.query:  # RFC 8484 GET carries ?dns=; the probe POSTs, so the path is the endpoint
        raise ValueError(f"{text!r}: a DoH endpoint has no query string (the probe POSTs)")
    address = ""
    try:
        address = ipaddress.ip_address(parts.hostname).compressed
    except ValueError:
        pass
    return ResolverPath(name="", transport="doh", address=address, port=port, url=text)


def parse_paths(value: Any) -> tuple[ResolverPath, ...]:
    """Check a list of resolver paths (or one, or a comma-separated string) with unique names."""
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"must be a non-empty list of resolver paths ({FORMS}), got {value!r}")
    if len(value) > MAX_PATHS:
        raise ValueError(f"at most {MAX_PATHS} resolver paths, got {len(value)}")
    out: list[ResolverPath] = []
    for i, item in enumerate(value):
        try:
            path = parse_path(item)
        except ValueError as e:
            raise Invalid(str(e), f"[{i}]") from None
        if any(p.name == path.name for p in out):
            raise Invalid(f"the name {path.name!r} is given twice", f"[{i}]")
        out.append(path)
    return tuple(out)


def resolver_paths(value: Any) -> tuple[str, ...]:
    """Check a list of resolver paths; keep them as written (the configuration's kind)."""
    parse_paths(value)
    items = [v for v in re.split(r"[,\s]+", value) if v] if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items)


def one_path(value: Any) -> str:
    """Check one resolver path; keep it as written."""
    parse_path(value)
    return str(value).strip()
