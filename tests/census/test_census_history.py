"""The census over time: a bucket counts a flag open at any time within it, and the domains on
the address then."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from collector.census import history
from probe.times import parse_rfc3339, rfc3339
from tests.census.conftest import mixed
from tests.collector.harness import Collector, answer_validator
from tests.support.census_fill import T0, CensusFill, at, text

HOUR = datetime.timedelta(hours=1)


async def series(collector: Collector, **params: Any) -> dict[str, list[tuple[int, int, int]]]:
    async with collector.client.get("/api/v1/census/history", params=params) as r:
        body = await r.json()
        assert r.status == 200, body
    answer_validator("/api/v1/census/history", "get", "200").validate(body)
    out = {}
    for s in body["series"]:
        ats = [p["at"] for p in s["points"]]
        hours, first = (24 if params.get("step") == "day" else 1), params["since"]
        assert ats == [rfc3339(parse_rfc3339(first) + i * hours * HOUR) for i in range(len(ats))]
        out[s["network"]] = [
            (p["blocked_addresses"], p["collateral_domains"], p["intended_domains"])
            for p in s["points"]
        ]
    return out


async def test_each_hour_counts_the_flags_then_and_the_domains_then(
    collector: Collector, fill: CensusFill
) -> None:
    mixed(fill)
    got = await series(collector, since=text(0), until=text(6), step="hour")
    assert got == {
        # X from 1 (a, b: moved had left X at 0); Y from 2 (a once more, pirate intended)
        "Orange": [(0, 0, 0), (1, 2, 0), (2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 2, 1)],
        # Y from 1, closed at 3: in the bucket of 3 still; then X from 4
        "Free": [(0, 0, 0), (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 2, 0), (1, 2, 0)],
        # X for half an hour at 0, while moved was on it as well
        "SFR": [(1, 3, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)],
    }
    assert await series(collector, since=text(0), until=text(6), network="SFR") == {
        "SFR": got["SFR"]
    }
    assert set(await series(collector, since=text(0), until=text(6), asn="3215")) == {"Orange"}


async def test_days_and_a_window_after_every_flag(collector: Collector, fill: CensusFill) -> None:
    mixed(fill)
    got = await series(collector, since=text(0), until=text(48), step="day")
    # day 0 holds moved's hour on X: a bucket counts the domains on the address at any time in it
    assert got == {
        "Orange": [(2, 3, 1), (2, 2, 1)],
        "Free": [(2, 3, 1), (1, 2, 0)],
        "SFR": [(1, 3, 0), (0, 0, 0)],
    }
    # a window starting after the closed flags: they are not in it
    later = await series(collector, since=text(24), until=text(26))
    assert set(later) == {"Orange", "Free"}


def test_buckets_start_on_a_whole_step_and_cover_until() -> None:
    now = T0 + datetime.timedelta(days=30)
    b = history.buckets("hour", at(0.5), at(3.25), now, 2000)
    assert (b.start, b.count, b.end) == (at(0), 4, at(4))
    d = history.buckets("day", None, now, now, 2000)
    assert (d.start, d.count) == (now - datetime.timedelta(days=90), 90)
    assert history.buckets("hour", None, None, now, 2000).count == 168
    with pytest.raises(ValueError, match=r"^step: 2001 buckets"):
        history.buckets("hour", at(0), at(2001), now, 2000)
    assert history.buckets("hour", at(0), at(2000), now, 2000).count == 2000


def test_a_tally_counts_a_key_once_a_bucket() -> None:
    t = history.Tally(5)
    t.add("a", (0, 2))
    t.add("a", (1, 3))  # overlapping: a once
    t.add("b", (4, 4))
    t.add("c", (2, 2))
    t.add("c", (4, 4))
    assert t.per_bucket() == [1, 1, 2, 1, 2]
