"""Surblocage probe: measures DNS, TCP, TLS and HTTP reachability; tells which layer interferes."""

__version__ = "0.1.0"
