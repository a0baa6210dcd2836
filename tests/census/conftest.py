"""Fixtures of the census's suite: an in-process collector on SQLite and on a real PostgreSQL
(the collector suite's fixtures), a filler of its census tables (tests/support/census_fill.py)
and the suite's mixed case."""

from __future__ import annotations

import pytest

from tests.collector.conftest import collector, db_url, pg_url, sqlite_url  # noqa: F401
from tests.collector.harness import Collector
from tests.support.census_fill import CensusFill

X, Y, Z = "203.0.113.1", "203.0.113.2", "198.51.100.9"


@pytest.fixture
def fill(collector: Collector) -> CensusFill:  # noqa: F811
    return CensusFill(collector.store)


def mixed(fill: CensusFill) -> None:
    """The mixed case of the suite (hours after T0):

    - a (rank 1) on X and Y: one domain on two blocked addresses; b (2) on X; c (3) on Z, never
      blocked; pirate (10, intended) on Y; moved (5) on X at 0, then on Z from 5.
    - Orange (AS 3215): X open from 1, Y open from 2. Free (AS 12322): Y from 1 closed at 3, X
      open from 4 (tls). SFR (AS 15557): X from 0 closed at 0.5.
    - the watched service mycanal on X.
    """
    fill.names("a.example", "b.example", "c.example", "moved.example", ranks=(1, 2, 3, 5))
    fill.names("pirate.example", intended=True, ranks=(10,))
    fill.resolve("a.example", (X, Y), 0)
    fill.resolve("b.example", (X,), 0)
    fill.resolve("c.example", (Z,), 0)
    fill.resolve("pirate.example", (Y,), 0)
    fill.resolve("moved.example", (X,), 0)
    fill.resolve("moved.example", (Z,), 5)
    fill.flag("Orange", X, 1, 6, asn=3215)
    fill.flag("Orange", Y, 2, 6, asn=3215)
    fill.flag("Free", Y, 1, 3, closed=3, asn=12322)
    fill.flag("Free", X, 4, 6, asn=12322, method="tls", evidence=("s-1", "s-2"))
    fill.flag("SFR", X, 0, 0.5, closed=0.5, asn=15557)
    fill.watch("mycanal", X, 0)
