"""probe.logs, the logging setup of both programs: one time format, one level spelling, one JSON
shape, for the programs' events and for every logger below "surblocage"."""

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from probe import logs

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"  # RFC 3339, UTC, milliseconds


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    yield
    logs.LOG.handlers.clear()
    logs.LOG.setLevel(logging.NOTSET)
    logs.LOG.propagate = True


def test_json_lines_have_one_shape() -> None:
    out = io.StringIO()
    logs.setup("json", "info", out)
    logs.event("batch stored", n=3)
    logging.getLogger("surblocage.collector.store").warning("writer lock unavailable")
    logs.event("not shown at info", logging.DEBUG)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert re.fullmatch(TIME, first.pop("time")) and re.fullmatch(TIME, second.pop("time"))
    assert first == {"level": "info", "logger": "surblocage", "msg": "batch stored", "n": 3}
    assert second == {
        "level": "warning",
        "logger": "surblocage.collector.store",
        "msg": "writer lock unavailable",
    }


def test_text_lines_say_time_level_message_and_fields() -> None:
    out = io.StringIO()
    logs.setup("text", "DEBUG", out)
    logs.event("sleeping until the next cycle", logging.DEBUG, seconds=12.5)
    assert re.fullmatch(
        rf"{TIME} debug sleeping until the next cycle seconds=12\.5\n", out.getvalue()
    )
