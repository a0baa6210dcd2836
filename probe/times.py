"""Times as records, logs and the API spell them: RFC 3339, and durations in milliseconds.

Parsed times need a zone ("Z" or an offset), except a query's date alone (YYYY-MM-DD: that day
at 00:00 UTC); formatted times are UTC with a Z; step durations come from a monotonic clock
(time.perf_counter). Standard library only.
"""

from __future__ import annotations

import datetime
import re
import time

# the times a record, a cursor or a query may name: wide of every real one, and far enough from
# datetime's own ends (years 1 and 9999) that no offset or window arithmetic overflows
EARLIEST = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
LATEST = datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC)


class MissingZone(ValueError):
    """A time that parses but says no zone: RFC 3339 requires one (a local time is ambiguous)."""


def parse_rfc3339(text: str) -> datetime.datetime:
    """Parse an RFC 3339 time with its zone ("Z" or an offset) between EARLIEST and LATEST;
    raise ValueError, or MissingZone."""
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{text!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise MissingZone(f"{text!r} has no time zone")
    try:
        utc = parsed.astimezone(datetime.UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"{text!r} is out of range ({EARLIEST.year} to {LATEST.year - 1})")
    return parsed


DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def parse_time_or_date(text: str) -> datetime.datetime:
    """Parse a query's time: RFC 3339 with its zone, or a date YYYY-MM-DD standing for that
    day's start (00:00 UTC); raise ValueError, or MissingZone for a time without a zone."""
    if isinstance(text, str) and DATE.fullmatch(text):
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date") from None
        return parse_rfc3339(f"{day.isoformat()}T00:00:00Z")
    return parse_rfc3339(text)


def rfc3339(when: datetime.datetime | float, timespec: str = "auto") -> str:
    """Format an aware time (or a POSIX timestamp) as RFC 3339 in UTC with a Z.

    ``timespec`` is isoformat's: "seconds" for the daemon's state files, "milliseconds" for
    records and logs, "auto" (microseconds when there are any) for stored times.
    """
    if not isinstance(when, datetime.datetime):
        when = datetime.datetime.fromtimestamp(when, datetime.UTC)
    text = when.astimezone(datetime.UTC).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z")


def elapsed_ms(started: float) -> float:
    """Return the milliseconds since ``started`` (a time.perf_counter() reading), to the µs."""
    return round((time.perf_counter() - started) * 1000, 3)
