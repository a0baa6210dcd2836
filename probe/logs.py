"""The probe's logs: text or JSON lines on standard error (journald reads both).

They never hold the volunteer's public address: the probe never learns it (no "what is my IP"
call), and logs name the collector, record ids, services and counts, never an answer's address.
The token is never logged.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, TextIO

LOG = logging.getLogger("surblocage.probe")


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level message key=value ...`` for people reading journalctl."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        text = f"{_time(record)} {record.levelname.lower()} {record.getMessage()} {fields}"
        if record.exc_info:
            text = text.rstrip() + "\n" + self.formatException(record.exc_info)
        return text.rstrip()


def _time(record: logging.LogRecord) -> str:
    t = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def setup(fmt: str = "text", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the probe's logs to ``stream`` (standard error) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    LOG.handlers[:] = [handler]
    LOG.setLevel(level.upper())
    LOG.propagate = False


def event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields (never pass an address of the volunteer's)."""
    LOG.log(level, msg, extra={"fields": fields})
