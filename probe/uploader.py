"""The only client of the collector's API: control requests now; registration and uploads later."""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiohttp

from probe import failures
from probe.record import Control, MalformedRecord, decode

CONTROL_PATH = "/api/v1/control"


class CollectorClient:
    """Talks to one collector; one aiohttp session for the client's life (use ``async with``)."""

    def __init__(
        self, control_url: str, timeout_seconds: float = 60.0, software: str = "surblocage"
    ) -> None:
        self.control_url = control_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {"User-Agent": software}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CollectorClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def control(self, url: str, addresses: Sequence[str]) -> Control:
        """Ask the collector to measure ``url`` from its vantage; a failure is a Control too."""
        assert self._session is not None, "use CollectorClient in 'async with'"
        body = {"targets": [{"url": url, "addresses": list(addresses)}]}
        try:
            async with self._session.post(self.control_url, json=body) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return Control(
                        failure=failures.UNKNOWN_PREFIX
                        + f"control answered HTTP {resp.status}: {_error_of(text)}"
                    )
                return _parse_control(text, url)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return Control(failure=failures.classify(e))


def _parse_control(text: str, url: str) -> Control:
    try:
        data = json.loads(text)
        entry = next(c for c in data["controls"] if c["url"] == url)
        return decode(Control, entry["control"], "control")
    except (ValueError, KeyError, TypeError, StopIteration, MalformedRecord) as e:
        return Control(failure=failures.UNKNOWN_PREFIX + f"malformed control answer: {e}")


def _error_of(text: str) -> str:
    try:
        return str(json.loads(text).get("error", text))[:200]
    except (ValueError, AttributeError):
        return text[:200]
