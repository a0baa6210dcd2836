"""Request bodies in: the content type and encoding a JSON route takes, and JSON within bounds.

Bounds, so that no body can reach a recursive or unbounded step with a value it cannot hold:
objects and arrays nested at most MAX_DEPTH deep (a deeper document made the decoders raise
RecursionError); integers within 64 bits (the store holds no more, and a 400-digit integer is
nobody's measurement); at most MAX_KEYS keys an object. No object the API defines has more than
about 20 keys, so unknown keys are ignored until an object holds MAX_KEYS, then refused.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

import msgspec

MAX_DEPTH = 32
MAX_KEYS = 64
INT_RANGE = (-(2**63), 2**64 - 1)
# what aiohttp decodes as it reads; anything else would reach the JSON decoder still encoded
ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})


class BodyError(ValueError):
    """A body refused: ``status`` is the HTTP status to answer (400, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def __reduce__(self) -> tuple[Any, tuple[int, str]]:
        return BodyError, (self.status, self.message)


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse a body that is not JSON (415) or is encoded in a way the collector does not read.

    A missing Content-Type is taken as JSON; any other type is refused, so that no browser form
    or ``text/plain`` request from another site can submit (they need no CORS preflight).
    """
    ctype = headers.get("Content-Type")
    if ctype is not None:
        media = ctype.partition(";")[0].strip().lower()
        if media != "application/json":
            raise BodyError(415, f"Content-Type: expected application/json, got {media!r}")
    coding = headers.get("Content-Encoding", "").strip().lower()
    if coding not in ENCODINGS:
        known = "gzip, deflate or none"
        raise BodyError(415, f"Content-Encoding: {coding!r} is not supported ({known})")


# JSON as RFC 8259 has it, decoded in C: UTF-8 only, and no NaN, Infinity, number past a double
# or unpaired surrogate (json.loads took them, and the store could not hold the last).
_JSON = msgspec.json.Decoder()


def decode_json(raw: bytes) -> Any:
    """Decode a JSON body within the bounds; BodyError (400) naming what is wrong."""
    if raw.startswith(codecs.BOM_UTF8):  # RFC 8259 section 8.1: a parser may ignore it
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        value = _JSON.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise BodyError(400, f"body: not valid JSON ({e})") from None
    except RecursionError:
        raise BodyError(400, f"body: nested deeper than {MAX_DEPTH} levels") from None
    check_bounds(value, integers=_LONG_DIGITS.search(raw) is not None)
    return value


# an integer past 64 bits has 20 digits or more: without such a run of digits anywhere in the
# body (strings included), no integer needs a look
_LONG_DIGITS = re.compile(rb"[0-9]{20}")


def check_bounds(value: Any, integers: bool = True) -> None:
    """Raise BodyError (400) if ``value`` is nested deeper than MAX_DEPTH, holds an object of
    more than MAX_KEYS keys or (when ``integers``) an integer past 64 bits.

    Level by level, without recursion: the depth it checks cannot overflow it.
    """
    level, depth = [value], 0
    if integers:
        _check_integers(level)
    while level:
        children: list[Any] = []
        for v in level:
            if type(v) is dict:
                if len(v) > MAX_KEYS:
                    raise BodyError(400, f"body: an object has more than {MAX_KEYS} keys")
                children.extend(v.values())
            elif type(v) is list:
                children.extend(v)
        if integers:
            _check_integers(children)
        level = [c for c in children if type(c) is dict or type(c) is list]
        depth += 1
        if level and depth >= MAX_DEPTH:
            raise BodyError(400, f"body: nested deeper than {MAX_DEPTH} levels")


def _check_integers(values: list[Any]) -> None:
    low, high = INT_RANGE
    if any(type(v) is int and not low <= v <= high for v in values):
        raise BodyError(400, "body: a number of more than 64 bits")
