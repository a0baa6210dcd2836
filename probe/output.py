"""What the probe prints for people: the tables of `check` (targets, or a sweep), and progress."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from probe.record import Measurement

if TYPE_CHECKING:
    from probe.sweep import Entry

COLOURS = {"ok": "32", "blocked": "31", "down": "33", "inconclusive": "36", "fail": "31"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def layer_status(m: Measurement) -> dict[str, str]:
    """Summarise each layer of a record in a word: ok, the failure string, or '-' when not run."""
    out = {"dns": "-", "tcp": "-", "tls": "-", "http": "-"}
    first = [
        r for r in m.dns if r.name in (None, m.target.domain) and r.path in (None, m.probe.path)
    ]
    if first:
        answered = [r for r in first if r.answers]
        out["dns"] = "ok" if answered else (first[0].failure or "no answer")
    for layer, results in (("tcp", m.tcp), ("tls", [t for t in m.tls if not t.neutral])):
        if results:
            failed = [r.failure for r in results if r.failure]
            out[layer] = "ok" if len(failed) < len(results) else str(failed[0])
    if m.http is not None:
        out["http"] = m.http.failure or str(m.http.status)
    return out


def verdict_text(m: Measurement) -> str:
    v = m.verdict
    if v is None:
        return "-"
    parts = [v.status] + [p for p in (v.method, v.detail) if p]
    text = "/".join(parts)
    return f"{text} [{v.blockpage}]" if v.blockpage else text


def other_paths_text(m: Measurement) -> str:
    """The verdicts of the resolver paths other than the primary, ``name=status/method``."""
    return " ".join(
        f"{p.path}=" + "/".join(x for x in (p.status, p.method, p.detail) if x) for p in m.paths[1:]
    )


def render_table(records: Sequence[Measurement], colour: bool) -> str:
    """Return the human table: one row a target, one column a layer, then the verdict (and
    the other resolver paths' verdicts when there are any)."""
    head = ["target", "dns", "tcp", "tls", "http", "verdict"]
    several = any(len(m.paths) > 1 for m in records)
    head += ["other resolver paths"] if several else []
    rows = []
    for m in records:
        s = layer_status(m)
        row = [m.target.url, s["dns"], s["tcp"], s["tls"], s["http"], verdict_text(m)]
        rows.append(row + ([other_paths_text(m)] if several else []))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for m, r in zip(records, rows, strict=True):
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        if colour:
            cells = [_paint(c, raw) for c, raw in zip(cells, r, strict=True)]
            status = m.verdict.status if m.verdict else ""
            cells[5] = _paint_code(cells[5], COLOURS.get(status, "0"))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render_sweep(entries: Sequence[Entry], colour: bool) -> str:
    """Return the sweep's table: one row an address; a step is ok, its failure, or '-' when
    it was not run."""
    head = ["ip", "sni", "tcp", "tls", "tls_neutral", "ms"]
    rows = []
    for e in entries:
        steps = [e.tcp, e.tls, e.tls_neutral]
        words = [(s or "ok") if i < e.steps else "-" for i, s in enumerate(steps)]
        rows.append([f"{e.address.ip}:{e.address.port}", e.address.sni, *words, str(e.ms)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        if colour:
            cells = cells[:2] + [_paint(c, raw) for c, raw in zip(cells[2:5], r[2:5], strict=True)]
            cells.append(r[5])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _paint(cell: str, raw: str) -> str:
    if raw == "ok" or (raw.isdigit() and raw.startswith(("2", "3"))):
        return _paint_code(cell, COLOURS["ok"])
    if raw == "-" or raw.isdigit():
        return cell
    return _paint_code(cell, COLOURS["fail"])


def _paint_code(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m"


class InOrder:
    """Hand records to ``emit`` in input order, each as soon as it and every one before it
    are done: only the records finished ahead of a slower one wait, not the whole cycle's."""

    def __init__(self, emit: Callable[[Measurement], None]) -> None:
        self.emit = emit
        self.next = 0
        self.waiting: dict[int, Measurement] = {}

    def __call__(self, i: int, m: Measurement) -> None:
        self.waiting[i] = m
        while self.next in self.waiting:
            self.emit(self.waiting.pop(self.next))
            self.next += 1


class Progress:
    """A progress counter: one line on a terminal, plain lines every 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.total, self.stream, self.quiet = total, stream, quiet
        self.done = self.blocked = 0
        self.tty = stream.isatty()
        self._last_step = -1

    def update(self, m: Measurement) -> None:
        self.done += 1
        if m.verdict is not None and m.verdict.status == "blocked":
            self.blocked += 1
        self._show(f"{self.done}/{self.total} targets measured, {self.blocked} blocked")

    def start_sweep(self, total: int) -> None:
        """Count addresses swept from now on (after the targets, in `run --once`)."""
        self.close()
        self.total, self.done, self.blocked, self._last_step = total, 0, 0, -1

    def swept(self, e: Entry) -> None:
        self.done += 1
        self.blocked += e.failed
        self._show(f"{self.done}/{self.total} addresses swept, {self.blocked} failed")

    def _show(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r{text}")
            self.stream.flush()
        elif (step := self.done * 10 // max(self.total, 1)) != self._last_step:
            self._last_step = step
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet and self.done:
            self.stream.write("\n")
            self.stream.flush()
