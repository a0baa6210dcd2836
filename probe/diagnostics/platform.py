"""Whether this process can send crafted packets: Linux, scapy installed, raw sockets allowed."""

from __future__ import annotations

import errno
import importlib.util
import socket
import sys

# why diagnostics are off, in the words of the record's ``skipped`` (docs/spec.md)
WHY = {
    "unsupported_platform": "raw IPv4 sockets as Linux offers them are needed",
    "scapy_missing": "scapy is not installed (pip install 'surblocage[diagnostics]')",
    "no_raw_socket": "no CAP_NET_RAW (the systemd unit grants it; deploy/README.md)",
    "disabled": "diagnostics.enabled is false (or --no-diagnostics)",
}


def unavailable() -> str | None:
    """Return why this process cannot diagnose (a ``skipped`` reason), or None when it can.

    Opens and closes one raw socket; scapy is looked up, not imported (it takes a second).
    """
    if not sys.platform.startswith("linux"):
        return "unsupported_platform"
    if importlib.util.find_spec("scapy") is None:
        return "scapy_missing"
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        return "no_raw_socket"
    except OSError as e:
        return "no_raw_socket" if e.errno in (errno.EPERM, errno.EACCES) else "unsupported_platform"
    return None
