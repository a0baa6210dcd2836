"""A collector that serves no watchlist (404 every cycle) is said once, not every cycle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from probe.client import CollectorClient
from probe.daemon.cycle import WatchlistSource


async def test_the_same_refusal_is_a_warning_once(
    tmp_path: Path, make_collector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    c = await make_collector()  # started without --watchlist: GET /api/v1/watchlist is a 404
    caplog.set_level(logging.DEBUG, logger="surblocage")
    async with CollectorClient(base_url=c.url) as client:
        source = WatchlistSource("collector", tmp_path, client)
        for _ in range(3):
            assert await source.get() == (None, "")
    said = [r for r in caplog.records if r.getMessage().startswith("watchlist not refreshed")]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "404" in str(said[0].__dict__.get("fields", said[0].getMessage()))
