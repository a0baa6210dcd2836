"""When each target was last diagnosed (the daemon's state dir): at most one diagnosis a target
per ``diagnostics.interval``, across restarts."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

FILE = "diagnosed.json"
MAX_ENTRIES = 10_000


class Memory:
    """Target URL -> the Unix time of its last diagnosis, kept in ``path`` (None: not kept)."""

    def __init__(
        self, path: Path | None, interval_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path, self.interval, self.clock = path, interval_seconds, clock
        self.last: dict[str, float] = self._read() if path is not None else {}

    def _read(self) -> dict[str, float]:
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or damaged: the worst is one diagnosis too many
        if not isinstance(doc, dict):
            return {}
        return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float)}

    def due(self, key: str) -> bool:
        """Tell whether ``key`` was not diagnosed within the interval."""
        when = self.last.get(key)
        return when is None or self.clock() - when >= self.interval

    def done(self, key: str) -> None:
        """Remember that ``key`` was diagnosed now; forget what the interval has passed."""
        now = self.clock()
        self.last = {k: t for k, t in self.last.items() if now - t < self.interval}
        self.last[key] = now
        if len(self.last) > MAX_ENTRIES:
            newest = sorted(self.last.items(), key=lambda kv: kv[1])[-MAX_ENTRIES:]
            self.last = dict(newest)
        if self.path is not None:
            self._write(self.path)

    def _write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with contextlib.suppress(OSError):  # a full disk: the interval holds until a restart
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.last, f)
            os.replace(tmp, path)
