"""The census over time, as arithmetic: buckets, and distinct things counted per bucket.

Pure: no SQL. A bucket ``i`` is ``[start + i * width, start + (i + 1) * width)``; a thing that
is there from ``a`` to ``b`` (``b`` None: still there) counts in every bucket it meets, the
bucket of ``a`` to that of ``b`` (docs/spec.md: "open at any time within the bucket"). Things are
counted as index ranges and difference arrays, so that a week of hours over ten thousand
(address, domain) pairs costs one pass over the pairs, not one a bucket.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

WIDTHS = {"hour": datetime.timedelta(hours=1), "day": datetime.timedelta(days=1)}
# without since, the buckets cover this span before until
DEFAULT_SPANS = {"hour": datetime.timedelta(days=7), "day": datetime.timedelta(days=90)}

Range = tuple[int, int]  # inclusive bucket indices


@dataclass(frozen=True)
class Buckets:
    """``count`` buckets of ``width`` from ``start`` (a whole hour or day, UTC) to ``end``."""

    start: datetime.datetime
    width: datetime.timedelta
    count: int
    end: datetime.datetime = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", self.start + self.count * self.width)

    def at(self, i: int) -> datetime.datetime:
        return self.start + i * self.width

    def span(self, first: datetime.datetime | None, last: datetime.datetime | None) -> Range:
        """The buckets a thing met in [start, end) meets, there from ``first`` (None: before
        start) to ``last`` (None: still there, or past end)."""
        lo = 0 if first is None or first < self.start else (first - self.start) // self.width
        if last is None or last >= self.end:
            return lo, self.count - 1
        return lo, (last - self.start) // self.width


def buckets(
    step: str,
    since: datetime.datetime | None,
    until: datetime.datetime | None,
    now: datetime.datetime,
    max_buckets: int,
) -> Buckets:
    """The buckets of ``step`` covering [since, until); raise ValueError naming the parameter
    at fault. Without until: now, or the end of the ``max_buckets``-th bucket from since when
    sooner; without since: a week of hours, or 90 days of days, before until."""
    width = WIDTHS[step]
    if until is None:
        until = now if since is None else min(now, _floor(since, step) + max_buckets * width)
    since = until - DEFAULT_SPANS[step] if since is None else since
    if until <= since:
        raise ValueError("until: must be after since")
    start = _floor(since, step)
    count = math.ceil((until - start) / width)
    if count > max_buckets:
        raise ValueError(
            f"step: {count} buckets of a {step} from since to until; at most {max_buckets} "
            "(a longer step, or a shorter span)"
        )
    return Buckets(start, width, count)


def _floor(t: datetime.datetime, step: str) -> datetime.datetime:
    t = t.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if step == "day" else t


def merged(ranges: Iterable[Range]) -> list[Range]:
    """The union of index ranges, as disjoint ranges in order."""
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def overlap(a: Range, b: Range) -> Range | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


class Tally:
    """How many distinct keys each bucket holds, keys added with the ranges they are there."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._single: dict[object, Range] = {}
        self._several: dict[object, list[Range]] = {}

    def add(self, key: object, r: Range) -> None:
        # most keys come once (a domain on one blocked address): no merge for them
        if key in self._several:
            self._several[key].append(r)
        elif key in self._single:
            self._several[key] = [self._single.pop(key), r]
        else:
            self._single[key] = r

    def per_bucket(self) -> list[int]:
        diff = [0] * (self.count + 1)
        for lo, hi in self._single.values():
            diff[lo] += 1
            diff[hi + 1] -= 1
        for ranges in self._several.values():
            for lo, hi in merged(ranges):
                diff[lo] += 1
                diff[hi + 1] -= 1
        counts, running = [], 0
        for d in diff[: self.count]:
            running += d
            counts.append(running)
        return counts
