"""probe.times: the one RFC 3339 parser and formatter, and step durations in milliseconds."""

import datetime
import time

import pytest

from probe import times

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T20:00:00Z", datetime.datetime(2026, 11, 28, 20, tzinfo=UTC)),
        ("2026-11-28T21:00:00.5+01:00", datetime.datetime(2026, 11, 28, 20, 0, 0, 500000, UTC)),
    ],
)
def test_parse_takes_a_zone(text, expected):
    assert times.parse_rfc3339(text) == expected


def test_parse_refuses_a_time_without_a_zone():
    with pytest.raises(times.MissingZone, match=r"^'2026-11-28T20:00:00' has no time zone$"):
        times.parse_rfc3339("2026-11-28T20:00:00")


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", None])
def test_parse_refuses_what_is_not_a_time(text):
    with pytest.raises(ValueError, match="is not an RFC 3339 time") as e:
        times.parse_rfc3339(text)
    assert not isinstance(e.value, times.MissingZone)


def test_format_in_utc_with_a_z():
    t = datetime.datetime(
        2026, 11, 28, 21, 0, 0, 123456, datetime.timezone(datetime.timedelta(hours=1))
    )
    assert times.rfc3339(t) == "2026-11-28T20:00:00.123456Z"
    assert times.rfc3339(t, "milliseconds") == "2026-11-28T20:00:00.123Z"
    assert times.rfc3339(t.timestamp(), "seconds") == "2026-11-28T20:00:00Z"


def test_elapsed_ms_counts_from_a_perf_counter_reading():
    ms = times.elapsed_ms(time.perf_counter() - 0.25)
    assert ms >= 250.0 and ms == round(ms, 3)
