"""The query API's filters, one definition each: parsing, checks, SQL conditions and their docs.

Handlers and the `export` command turn text into values with ``parse``; the store checks values
and builds its WHERE clauses with ``check`` and ``where``; collector/openapi.py documents each
filter as a parameter and collector/cli.py makes each an option of `export`. A new filter is one
``Filter`` in a set here, plus its field where the store takes the query (``MeasurementQuery``,
or the keywords of the flag query).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from collector.store.schema import check_asn, check_text, check_time
from probe.record import CATEGORIES, METHODS, STATUSES
from probe.times import MissingZone, parse_time_or_date

# kinds of value: what the text of a query parameter becomes, and how it is checked
TEXT, ASN, TIME, COUNT, CURSOR = "text", "asn", "time", "count", "cursor"
MAX_LIMIT = 1000
FLAG_STATES = ("open", "closed")
ORDERS = ("asc", "desc")

Test = Callable[[Any, Any], sa.ColumnElement[bool]]


def equals(column: Any, value: Any) -> sa.ColumnElement[bool]:
    return column == value


def at_or_after(column: Any, value: Any) -> sa.ColumnElement[bool]:
    return column >= value


def before(column: Any, value: Any) -> sa.ColumnElement[bool]:
    return column < value


def open_or_closed_at_or_after(column: Any, value: Any) -> sa.ColumnElement[bool]:
    """Still open (null), or closed at or after ``value``: in force at some time from then."""
    return sa.or_(column.is_(None), column >= value)


@dataclass(frozen=True)
class Filter:
    """One filter: its name in the API, what its value is, what it tests, how it is documented.

    ``column`` is the column ``test`` applies to (default: the column named like the filter);
    a filter without a ``test`` (paging) is no condition. ``bounds`` are a COUNT's inclusive
    limits; ``choices`` the only values a TEXT may take, ``pattern`` the grammar it must match.
    """

    name: str
    kind: str
    help: str
    example: str | int
    choices: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None
    column: str | None = None
    test: Test | None = equals
    pattern: re.Pattern[str] | None = None

    def convert(self, text: str) -> Any:
        """Return the value a query parameter's text stands for, or raise ValueError."""
        if self.kind in (ASN, COUNT):
            return _whole_number(self.name, text)
        if self.kind == TIME:
            return _time_param(self.name, text)
        return text

    def check(self, value: Any) -> None:
        """Raise ValueError naming the filter unless ``value`` is one it takes (None: any)."""
        if value is None or self.kind == CURSOR:  # a cursor is checked by decoding it
            return
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(self.choices)}")
        if self.pattern and not (isinstance(value, str) and self.pattern.fullmatch(value)):
            raise ValueError(f"{self.name}: {value!r} does not match {self.pattern.pattern}")
        if self.kind == ASN:
            check_asn(self.name, value)
        elif self.kind == TIME:
            check_time(self.name, value)
        elif self.kind == COUNT:
            self._check_count(value)
        else:
            check_text(self.name, value)

    def _check_count(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.name}: expected an integer, got {value!r}")
        if self.bounds and not self.bounds[0] <= value <= self.bounds[1]:
            low, high = self.bounds
            raise ValueError(f"{self.name}: {value} is not between {low} and {high}")

    def condition(self, columns: Any, value: Any) -> sa.ColumnElement[bool] | None:
        """Return the SQL condition for ``value`` on a table's ``columns`` (None: no condition)."""
        if value is None or self.test is None:
            return None
        return self.test(columns[self.column or self.name], value)


SERVICE = Filter("service", TEXT, "watchlist id of the service", "mycanal")
DOMAIN = Filter("domain", TEXT, "domain measured", "www.canalplus.com")
ASN_ = Filter("asn", ASN, "AS number of the probe's network", 3215)
NETWORK = Filter("network", TEXT, "name of the probe's network", "Orange")
STATUS = Filter("status", TEXT, "the collector's verdict", "ok", STATUSES)
METHOD = Filter("method", TEXT, "where blocking happens", "dns", METHODS)
PROBE_ID = Filter("probe_id", TEXT, "the probe that measured", "p-0123456789abcdef0123")
CATEGORY = Filter("category", TEXT, "the service's category", "iptv_legal", CATEGORIES)
STATE = Filter("state", TEXT, "the flag's state", "open", FLAG_STATES)
# a resolver path's name (docs/spec.md "Resolver paths"): `isp` is the line's own resolver
RESOLVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
RESOLVER = Filter(
    "resolver", TEXT, "the resolver path (isp: the line's own)", "google", pattern=RESOLVER_NAME
)
# a cursor as the API gives them out: base64url of ["<started_at>", "<id>"]
EXAMPLE_CURSOR = (
    "WyIyMDI2LTAzLTAxVDIwOjAwOjAwKzAwOjAwIiwiMDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAwIl0"
)
LIMIT = Filter("limit", COUNT, "records a page", 100, bounds=(1, MAX_LIMIT), test=None)
CURSOR_ = Filter("cursor", CURSOR, "next_cursor of the previous page", EXAMPLE_CURSOR, test=None)


def _since(help: str, column: str, test: Test = at_or_after) -> Filter:
    return Filter("since", TIME, help, "2026-03-01T00:00:00Z", column=column, test=test)


def _until(help: str, column: str) -> Filter:
    return Filter("until", TIME, help, "2026-04-01T00:00:00Z", column=column, test=before)


def _order(help: str) -> Filter:
    """The direction of a list (no condition: the store's query reads it)."""
    return Filter("order", TEXT, help, "desc", ORDERS, test=None)


def descending(values: Mapping[str, Any], default: str = "asc") -> bool:
    """Whether the ``order`` in ``values`` (else ``default``) is "desc"."""
    return (values.get("order") or default) == "desc"


# a date alone (YYYY-MM-DD) is that day's start, 00:00 UTC: until=2026-03-02 ends with March 1st
ZONED = "(RFC 3339 with a zone, or YYYY-MM-DD: that day at 00:00 UTC)"
# since is inclusive and until exclusive, on the time the record was started
MEASUREMENT_FILTERS = (
    SERVICE, DOMAIN, ASN_, NETWORK, STATUS, METHOD, PROBE_ID,
    _since(f"started at or after {ZONED}", "started_at"),
    _until(f"started before {ZONED}", "started_at"),
    _order("asc (default): by (started_at, id), oldest first; desc: the exact reverse"),
)  # fmt: skip
PAGING = (LIMIT, CURSOR_)
# a flag counts when in force at some time in [since, until): not closed before since, first
# seen before until
FLAG_FILTERS = (
    ASN_, NETWORK, SERVICE, CATEGORY, METHOD, STATE,
    _since(f"in force at or after {ZONED}", "closed_at", open_or_closed_at_or_after),
    _until(f"first seen before {ZONED}", "first_seen"),
    _order("desc (default): latest seen first; asc: the exact reverse"),
    RESOLVER,
)  # fmt: skip
COLLATERAL_FILTERS = (
    ASN_, NETWORK,
    _order("desc (default): most services behind an address first; asc: the exact reverse"),
)  # fmt: skip

# The census (docs/spec.md "The census: routes, metrics, export"). /census takes the networks;
# /census/addresses and the census export take the address flags, in force during [since, until)
CENSUS_FILTERS = (
    ASN_, NETWORK,
    _order("desc (default): most collateral domains first; asc: the exact reverse"),
)  # fmt: skip
ADDRESS_STATE = Filter("state", TEXT, "the address flag's state", "open", FLAG_STATES)
CENSUS_ADDRESS_FILTERS = (
    ASN_, NETWORK, ADDRESS_STATE,
    _order("desc (default): most domains on the address first; asc: the exact reverse"),
    _since(f"in force at or after {ZONED}", "closed_at", open_or_closed_at_or_after),
    _until(f"first seen before {ZONED}", "first_seen"),
)  # fmt: skip
# an address's domains, best ranked first, a page at a time: base64url of [<rank>, <domain id>]
EXAMPLE_DOMAIN_CURSOR = "WzEyLDQ1Njdd"
DOMAIN_LIMIT = Filter("limit", COUNT, "domains a page", 100, bounds=(1, MAX_LIMIT), test=None)
DOMAIN_CURSOR = Filter(
    "cursor", CURSOR, "next_cursor of the previous page", EXAMPLE_DOMAIN_CURSOR, test=None
)
DOMAIN_PAGING = (DOMAIN_LIMIT, DOMAIN_CURSOR)
# the census over time: buckets of an hour or a day over [since, until), at most MAX_BUCKETS
STEPS = ("hour", "day")
MAX_BUCKETS = 2000
HISTORY_FILTERS = (
    ASN_, NETWORK,
    Filter("since", TIME, f"the first bucket holds this time {ZONED}", "2026-03-01T00:00:00Z",
           test=None),
    Filter("until", TIME, f"the buckets end at or after this time {ZONED}",
           "2026-03-08T00:00:00Z", test=None),
    Filter("step", TEXT, "the width of a bucket", "hour", STEPS, test=None),
)  # fmt: skip


def names(filters: Iterable[Filter]) -> tuple[str, ...]:
    return tuple(f.name for f in filters)


def parse(
    params: Mapping[str, str], filters: Sequence[Filter], others: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Return the values of the ``filters`` given in ``params`` (query parameters, or options);
    raise ValueError naming the one at fault: unknown (``others`` are known, and left to the
    caller), given more than once, or malformed."""
    known = (*others, *names(filters))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown parameter (known: {', '.join(known)})")
    getall = getattr(params, "getall", lambda k: [params[k]])
    repeated = sorted(k for k in set(params) if len(getall(k)) > 1)
    if repeated:
        raise ValueError(f"{repeated[0]}: given more than once")
    values = {}
    for f in filters:
        if f.name in params:
            values[f.name] = f.convert(params[f.name])
            f.check(values[f.name])
    return values


def check(filters: Sequence[Filter], values: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first of ``filters`` whose value in ``values`` is bad."""
    for f in filters:
        f.check(values.get(f.name))


def where(
    filters: Sequence[Filter], columns: Any, values: Mapping[str, Any]
) -> list[sa.ColumnElement[bool]]:
    """Check ``values`` and return the SQL conditions of those given (None: any)."""
    check(filters, values)
    found = (f.condition(columns, values.get(f.name)) for f in filters)
    return [c for c in found if c is not None]


def _whole_number(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name}: expected a whole number, got {text!r}")
    if len(text) > 20:  # past 64 bits; and int() of thousands of digits costs quadratic time
        raise ValueError(f"{name}: expected a whole number of at most 20 digits")
    return int(text)


def _time_param(name: str, text: str) -> datetime.datetime:
    try:
        return parse_time_or_date(text)
    except MissingZone:
        why = "give a time zone (e.g. 2026-11-28T00:00:00Z) or a date alone (2026-11-28)"
        raise ValueError(f"{name}: {why}, got {text!r}") from None
    except ValueError:
        why = "expected an RFC 3339 time or a date YYYY-MM-DD"
        raise ValueError(f"{name}: {why}, got {text!r}") from None
