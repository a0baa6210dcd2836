"""A damaged spool: moved aside whole, and every record that can still be read taken out of it.

SQLite first (a spool with one bad page still answers a full scan, or most of one); when it
cannot even read its schema (a truncated file), the file's pages are read directly: every table
leaf page (in the file and in its write-ahead log) is decoded, and each row shaped like a spooled
record (id, time, body) whose body is a valid record is kept. Pages SQLite had freed may still
hold records already delivered: they are sent again, which the collector ignores (it is
idempotent by record id). The damaged file stays beside the new one for an operator.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from probe.record import MalformedRecord, Measurement

SIDE_FILES = ("-wal", "-shm")
DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # not: full, busy, read-only, I/O


@dataclass(frozen=True)
class Rescue:
    """What was found wrong with a spool file, where it went, and the records read from it."""

    why: str
    moved_to: str
    records: list[tuple[str, float, str]] = field(default_factory=list)  # id, spooled_at, body


def check(path: Path, now: float) -> Rescue | None:
    """Return None for a sound spool (or none); else move it aside and salvage what it holds."""
    if not path.exists():
        return None
    why = "zero bytes" if path.stat().st_size == 0 else _damage(path)
    if why is None:
        return None
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in SIDE_FILES:  # a log left beside the new file would be replayed into it
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return Rescue(why, str(aside), list(_readable(aside)))


def _damage(path: Path) -> str | None:
    """Return what SQLite says is wrong with the file, or None when its check finds nothing."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorcode", 0) & 0xFF in DAMAGED:
            return str(e)
        return None  # a full disk, a lock: no sign of damage, no reason to move the file
    finally:
        db.close()
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])


def _readable(aside: Path) -> Iterator[tuple[str, float, str]]:
    """Yield each valid record once: through SQLite's scan, else from the pages themselves."""
    seen: set[str] = set()
    pages = _from_pages(aside)
    # SQLite deletes the log of an empty file on opening it, read-only or not: keep it whole
    scanned = _scanned(aside) if aside.stat().st_size else []
    for rid, at, body in (*scanned, *pages):
        if rid not in seen and _valid(rid, body):
            seen.add(rid)
            yield rid, at, body


def _valid(rid: object, body: object) -> bool:
    if not isinstance(rid, str) or not isinstance(body, str):
        return False
    try:
        return Measurement.from_json(body).id == rid
    except (MalformedRecord, ValueError):
        return False


def _scanned(aside: Path) -> list[tuple[str, float, str]]:
    """The rows SQLite can still read in order, up to the first error."""
    rows: list[tuple[str, float, str]] = []
    uri = aside.resolve().as_uri() + "?mode=ro"  # the damaged file stays as it was found
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(uri, uri=True)) as db,
    ):
        for table in ("records", "quarantine"):  # a quarantined record is tried again
            for row in db.execute(f"SELECT id, spooled_at, body FROM {table} ORDER BY seq"):
                rows.append(row)
    return rows


def _from_pages(aside: Path) -> list[tuple[str, float, str]]:
    """Records on the table leaf pages of the file and of its log (SQLite file format 1.5, 1.6)."""
    data = aside.read_bytes()
    size = struct.unpack(">H", data[16:18])[0] if data[:6] == b"SQLite" else 4096
    size = 65536 if size == 1 else size
    pages = [data[i : i + size] for i in range(0, len(data), size)]
    wal = aside.with_name(aside.name + "-wal")
    if wal.exists():
        log = wal.read_bytes()
        pages += [log[i + 24 : i + 24 + size] for i in range(32, len(log) - 24, size + 24)]
    reserved = data[20] if len(data) > 20 else 0
    book = _Pages(pages[: len(data) // size], size - reserved)
    rows: list[tuple[str, float, str]] = []
    for n, page in enumerate(pages):
        with contextlib.suppress(IndexError, ValueError, struct.error, UnicodeDecodeError):
            rows += book.rows(page, 100 if n == 0 else 0)
    return rows


@dataclass
class _Pages:
    """The file's pages (for overflow chains) and the usable bytes of each."""

    pages: list[bytes]
    usable: int

    def rows(self, page: bytes, start: int) -> Iterator[tuple[str, float, str]]:
        if page[start] != 0x0D:  # only table leaves hold rows
            return
        (cells,) = struct.unpack(">H", page[start + 3 : start + 5])
        for i in range(cells):
            (at,) = struct.unpack(">H", page[start + 8 + 2 * i : start + 10 + 2 * i])
            with contextlib.suppress(IndexError, ValueError, struct.error, UnicodeDecodeError):
                values = _record(self._payload(page, at))
                # records: seq, id, spooled_at, body; quarantine: ..., reason, body, version
                body = {4: 3, 6: 5, 7: 5}.get(len(values))
                if body is not None and isinstance(values[2], int | float):
                    yield values[1], float(values[2]), values[body]  # type: ignore[misc]

    def _payload(self, page: bytes, at: int) -> bytes:
        """A cell's payload, followed through its overflow pages (SQLite file format 1.6)."""
        total, at = _varint(page, at)
        _, at = _varint(page, at)  # the rowid
        u = self.usable
        if total <= u - 35:
            return page[at : at + total]
        m = (u - 12) * 32 // 255 - 23
        k = m + (total - m) % (u - 4)
        local = k if k <= u - 35 else m
        out = bytearray(page[at : at + local])
        (nxt,) = struct.unpack(">I", page[at + local : at + local + 4])
        while len(out) < total and 0 < nxt <= len(self.pages):
            over = self.pages[nxt - 1]
            out += over[4 : 4 + min(u - 4, total - len(out))]
            (nxt,) = struct.unpack(">I", over[:4])
        if len(out) < total:
            raise ValueError("overflow chain cut")
        return bytes(out)


def _varint(b: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = b[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise ValueError("varint")  # not reached


INT_BYTES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _record(p: bytes) -> list[object]:
    """Decode a record (header of serial types, then values): NULL, integers, floats, text."""
    header, at = _varint(p, 0)
    types = []
    while at < header:
        t, at = _varint(p, at)
        types.append(t)
    values: list[object] = []
    body = header
    for t in types:
        if t == 0:
            values.append(None)
        elif t in INT_BYTES:
            n = INT_BYTES[t]
            values.append(int.from_bytes(p[body : body + n], "big", signed=True))
            body += n
        elif t == 7:
            values.append(struct.unpack(">d", p[body : body + 8])[0])
            body += 8
        elif t in (8, 9):
            values.append(t - 8)
        elif t >= 13 and t % 2:
            n = (t - 13) // 2
            values.append(p[body : body + n].decode())
            body += n
        else:
            raise ValueError(f"serial type {t}")
    if body > len(p):
        raise ValueError("record cut")
    return values
