"""Structured logs for the collector: text or JSON lines; never an address (DESIGN.md, privacy)."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

LOG = logging.getLogger("surblocage.collector")


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, message and the record's ``fields`` extra."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        base = f"{self.formatTime(record)} {record.levelname.lower()} {record.getMessage()}"
        text = f"{base} {fields}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(fmt: str = "text", level: str = "info", stream: Any = None) -> None:
    """Send the collector's logs to ``stream`` (stderr) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("surblocage")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def event(msg: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with structured fields (never pass an address here)."""
    LOG.log(level, msg, extra={"fields": fields})
