"""Lists of domain names as `domains import` reads them (docs/spec.md, "The domain index"); pure.

A list is a Tranco-style CSV (``rank,domain``, a header line allowed) or one name a line (``#``
comments, blank lines), gzip-compressed or not (told by its magic bytes, whatever the file's
name). It is read as a stream, chunk by chunk: a million lines are never held at once. A line
that is not a hostname is skipped and counted with its number and why; a hostile file can make
nothing else happen (a line is cut at MAX_LINE_BYTES, and an over-long one skipped).
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from probe import addresses

GZIP_MAGIC = b"\x1f\x8b"
# A rank, a comma and a name of 253 characters fit well within this; longer is not a name.
MAX_LINE_BYTES = 1024
MAX_NAME_CHARS = 253
SKIPPED_KEPT = 10  # the skipped lines remembered (with number and why) to show the user
CHUNK = 5000

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HEADER_RANKS = frozenset({"rank", "#", "position", "pos", "n"})

Entry = tuple[str, int | None]
"""One name of a list, with its rank (None: a plain list, no rank)."""


@dataclass(frozen=True)
class Skipped:
    """A line that was not imported: its number (from 1) and why."""

    line: int
    why: str


@dataclass
class Tally:
    """What reading a list skipped: how many lines, and the first SKIPPED_KEPT of them."""

    lines: int = 0
    skipped: int = 0
    first: list[Skipped] = field(default_factory=list)

    def skip(self, line: int, why: str) -> None:
        self.skipped += 1
        if len(self.first) < SKIPPED_KEPT:
            self.first.append(Skipped(line, why))


def hostname(text: str) -> str:
    """Return ``text`` as the index keeps a name (lower-case, no trailing dot, an IDN as its
    ``xn--`` form); raise ValueError saying why it is not a hostname."""
    name = text.strip().lower().removesuffix(".")
    if not name:
        raise ValueError("empty name")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("not a valid internationalised name") from None
    if addresses.is_ip(name):
        raise ValueError("an IP address, not a name")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"longer than {MAX_NAME_CHARS} characters")
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            raise ValueError(_label_fault(label))
    return name


def _label_fault(label: str) -> str:
    if not label:
        return "an empty label"
    if len(label) > 63:
        return "a label longer than 63 characters"
    bad = next((c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))), None)
    if bad is not None:
        return f"character {bad!r} is not a letter, digit or hyphen"
    return "a label starts or ends with a hyphen"


def parse_line(text: str, number: int) -> Entry | None:
    """Return the entry of one line, or None for a comment, a blank or a CSV header; raise
    ValueError saying why the line is not one."""
    text = text.strip().removeprefix("\ufeff") if number == 1 else text.strip()
    if not text or text.startswith("#"):
        return None
    if "," not in text:
        return hostname(text), None
    rank_text, _, name = text.partition(",")
    rank_text = rank_text.strip()
    if rank_text.isascii() and rank_text.isdigit():
        return hostname(name), int(rank_text)
    if number == 1 and rank_text.lower() in _HEADER_RANKS:
        return None
    raise ValueError(f"rank {rank_text[:20]!r} is not a whole number")


def read(stream: BinaryIO, tally: Tally, chunk: int = CHUNK) -> Iterator[list[Entry]]:
    """Yield the entries of the list ``stream`` (plain or gzip) in chunks of at most ``chunk``;
    count the lines and skipped lines in ``tally`` as they are read."""
    out: list[Entry] = []
    for number, raw in enumerate(_lines(_decompressed(stream)), start=1):
        tally.lines = number
        if raw is None:
            tally.skip(number, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            entry = parse_line(raw.decode("utf-8"), number)
        except UnicodeDecodeError:
            tally.skip(number, "not UTF-8")
            continue
        except ValueError as e:
            tally.skip(number, str(e))
            continue
        if entry is not None:
            out.append(entry)
            if len(out) >= chunk:
                yield out
                out = []
    if out:
        yield out


def _decompressed(stream: BinaryIO) -> BinaryIO:
    """Return ``stream``, decompressed when it starts with gzip's magic bytes."""
    # peek() needs a buffered reader: standard input is one, a test's BytesIO is not
    buffered = (
        stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(cast(Any, stream))
    )
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))
    return cast(BinaryIO, buffered)


def _lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Yield each line of ``stream`` without its end, or None for a line past MAX_LINE_BYTES
    (read to its end in bounded pieces, never held whole)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES + 1)
            yield None
            continue
        yield line.rstrip(b"\r\n")
