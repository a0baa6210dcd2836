"""The logs of both programs: text or JSON lines on standard error, set up in one way.

journald reads both. One time format (RFC 3339 UTC with milliseconds), one spelling of levels
(lower case), one JSON shape (time, level, logger, msg, then the event's fields).

They never hold an address of a volunteer's: the probe never learns its public address (no "what
is my IP" call) and logs the collector, record ids, services and counts, never an answer's
address; the collector uses a submitter's address for one ASN lookup and logs none (it blanks
the addresses aiohttp's own messages carry, collector/app.py). No token is ever logged.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from probe.times import rfc3339

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
LOG = logging.getLogger("surblocage")  # every logger of both programs is below it


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": rfc3339(record.created, "milliseconds"),
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
        time, level = rfc3339(record.created, "milliseconds"), record.levelname.lower()
        text = f"{time} {level} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Send the program's logs to ``stream`` (standard error) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    LOG.handlers[:] = [handler]
    LOG.setLevel(level.upper())
    LOG.propagate = False


def event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with structured fields (never pass an address of a volunteer's)."""
    LOG.log(level, msg, extra={"fields": fields})
