"""The kinds of value a configuration key takes: converters that check a value and type it.

A converter takes what YAML, the environment or the command line gave and returns the checked
value, or raises ValueError(why) (`Invalid` when the fault is inside the value, at a subkey).
"""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Invalid(ValueError):
    """A bad value inside a key (``subkey`` such as "[0].start" completes the dotted key)."""

    def __init__(self, why: str, subkey: str = "") -> None:
        super().__init__(why)
        self.subkey = subkey


def number(
    low: float, high: float = math.inf, whole: bool = False, positive: bool = False
) -> Callable[[Any], Any]:
    """Return a converter to a number from ``low`` to ``high`` (above 0 if ``positive``)."""
    what = "a positive number" if positive else f"a number, {low} or more"
    if whole and high < math.inf:
        what = f"a whole number from {low} to {high}"
    elif whole:
        what = f"a whole number, {low} or more"

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


positive = number(0, positive=True)


def choice(*options: str) -> Callable[[Any], str]:
    """Return a converter to one of ``options``, whatever the case it is written in."""

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in [o.lower() for o in options]:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return next(o for o in options if o.lower() == value.lower())

    return convert


def boolean(value: Any) -> bool:
    """Check a boolean (YAML's, or true/false, yes/no, 1/0 written as text)."""
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in words:
        return words[value.lower()]
    raise ValueError(f"must be true or false, got {value!r}")


def text(value: Any) -> str:
    """Check a non-empty string; return it without surrounding blanks."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def url(value: Any) -> str:
    """Check an http or https URL."""
    parts = urllib.parse.urlsplit(text(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http or https URL, got {value!r}")
    return text(value)


def file(value: Any) -> str:
    """Check the path of an existing file ("~" is the home directory)."""
    path = str(Path(text(value)).expanduser())
    if not Path(path).is_file():
        raise ValueError(f"no such file: {value}")
    return path


def files(value: Any) -> tuple[str, ...]:
    """Check one file path or a list of them."""
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        try:
            out.append(file(item))
        except ValueError as e:
            raise Invalid(str(e), f"[{i}]") from None
    return tuple(out)


def parse_resolver(value: Any) -> tuple[str, int]:
    """Parse "IP", "IP:PORT" or "[IPv6]:PORT" into (address, port); raise ValueError(why)."""
    if not isinstance(value, str):
        raise ValueError(f"expected IP, IP:PORT or [IPv6]:PORT, got {value!r}")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+):(\d+)|([^\[\]]+)", value.strip())
    if m is None:
        raise ValueError(f"expected IP, IP:PORT or [IPv6]:PORT, got {value!r}")
    host = m.group(1) or m.group(3) or m.group(5)
    port = int(m.group(2) or m.group(4) or 53)
    try:
        address = ipaddress.ip_address(host).compressed
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not from 1 to 65535")
    return address, port


def resolver(value: Any) -> str:
    """Check a resolver address, "IP", "IP:PORT" or "[IPv6]:PORT"; return it as written."""
    parse_resolver(value)
    return str(value).strip()


def networks(items: Any, strict: bool = True) -> tuple[Network, ...]:
    """Parse CIDR strings (one, or a list) into networks; raise ValueError naming the bad item.

    ``strict=False`` lets host bits through (10.0.0.1/8 is 10.0.0.0/8)."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list | tuple):
        raise ValueError(f"must be a list of networks (CIDR), got {items!r}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=strict))
        except ValueError as e:
            raise Invalid(f"{item!r} is not a network ({e})", f"[{i}]") from None
    return tuple(out)
