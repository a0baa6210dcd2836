"""A submitted batch's JSON text: decoded once, each record's members kept with their text.

Issue 7: encoding every stored record again cost about a tenth of ingest. The body is decoded
member by member with the json module's own scanner (the C one json.loads uses), so each
record's value comes with where its members lie in the text; its stored document is then that
text with some members replaced (the verdict, the probe block) and the others byte for byte as
the probe sent them. A body of any other shape, or bytes that are not UTF-8, is decoded by
json.loads alone: the same values and the same errors, without the text.
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()  # what json.loads uses: same numbers, NaN, strictness
_SPACE = re.compile(r"[ \t\n\r]*")
# the json module's string scanner (its C one when built), not in typeshed
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
Member = tuple[str, int, int]
"""A member of an object in the text: its key, where its value starts and ends."""


@dataclass(frozen=True)
class RecordText:
    """Where one record lies in the body's text, and where each of its members does."""

    text: str
    start: int
    end: int  # just after the closing brace
    members: tuple[Member, ...]

    def document(self, replaced: dict[str, Any]) -> str:
        """Return the record's text with the members named in ``replaced`` given those values
        (added at the end when absent): JSON whose value is the record's, so replaced."""
        pieces, at, seen = [], self.start, set()
        for key, start, end in self.members:
            if key in replaced:
                pieces += [self.text[at:start], _encode(replaced[key])]
                at = end
                seen.add(key)
        pieces.append(self.text[at : self.end - 1])
        pieces += [f",{_encode(k)}:{_encode(v)}" for k, v in replaced.items() if k not in seen]
        pieces.append("}")
        return "".join(pieces)


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode(raw: bytes) -> tuple[Any, list[RecordText] | None]:
    """Return the body's value (as json.loads gives it, raising what it raises) and, for a body
    ``{"records": [{...}, ...], ...}``, each record's text (else None)."""
    try:
        return _batch(raw.decode("utf-8"))
    except (ValueError, IndexError):
        return json.loads(raw), None  # not the usual shape: json.loads decides, and says why


class _Shape(ValueError):
    """Not a batch as the scanner expects it (json.loads takes over)."""


def _batch(text: str) -> tuple[dict[str, Any], list[RecordText]]:
    found: dict[str, list[RecordText] | None] = {}

    def value_of(key: str, at: int) -> tuple[Any, int]:
        if key == "records" and text[at] == "[":
            values, found[key], end = _records(text, at)
            return values, end
        found[key] = None  # a later "records" replaces an earlier one, as in json.loads
        return _decoded(key, at, text)

    start = _space(text, 0)
    _expect(text, start, "{")
    _, body, end = _object(text, start, value_of)
    records = found.get("records")
    if _space(text, end) != len(text) or records is None:
        raise _Shape("trailing data, or no array of records")
    return body, records


def _records(text: str, at: int) -> tuple[list[Any], list[RecordText], int]:
    """Scan the array of records whose ``[`` is at ``at``: values, texts, the end."""
    values: list[Any] = []
    texts: list[RecordText] = []
    at = _space(text, at + 1)
    if text[at] == "]":
        return values, texts, at + 1
    while True:
        if text[at] != "{":
            raise _Shape("a record that is not an object")
        members, value, end = _object(text, at, lambda k, i: _decoded(k, i, text))
        values.append(value)
        texts.append(RecordText(text, at, end, tuple(members)))
        at = _space(text, end)
        if text[at] == "]":
            return values, texts, at + 1
        at = _space(text, _expect(text, at, ","))


def _object(
    text: str, at: int, value_of: Callable[[str, int], tuple[Any, int]]
) -> tuple[list[Member], dict[str, Any], int]:
    """Scan the object whose ``{`` is at ``at``: its members, its value, the index after it."""
    members: list[Member] = []
    value: dict[str, Any] = {}
    at = _space(text, at + 1)
    if text[at] == "}":
        return members, value, at + 1
    while True:
        key, at = _scanstring(text, _expect(text, at, '"'))
        at = _space(text, _expect(text, _space(text, at), ":"))
        value[key], end = value_of(key, at)
        members.append((key, at, end))
        at = _space(text, end)
        if text[at] == "}":
            return members, value, at + 1
        at = _space(text, _expect(text, at, ","))


def _decoded(key: str, at: int, text: str) -> tuple[Any, int]:
    del key  # every member of a record is decoded alike
    value, end = _DECODER.raw_decode(text, at)
    return value, int(end)


def _space(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]


def _expect(text: str, at: int, char: str) -> int:
    if text[at] != char:
        raise _Shape(f"expected {char}")
    return at + 1
