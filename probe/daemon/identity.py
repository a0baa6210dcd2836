"""The probe's state dir: its identity (probe id, token, collector) and private atomic files.

Every file here is created 0600 inside a 0700 directory, written to a temporary file, flushed to
disk and renamed over the old one, so a crash (kill -9, power cut) leaves the old or the new
content, never half of one. The token is a secret: it is never logged or printed.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import times
from probe.client import text_field

IDENTITY_FILE = "identity.json"
OPTIONAL = ("token_expires_at", "token_issued_at")  # absent from identities before expiry
LOCK_FILE = "lock"


class StateError(Exception):
    """A state dir file that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class Identity:
    """Who this probe is for one collector (a token is only good where it was issued)."""

    probe_id: str
    token: str
    collector: str
    registered_at: str
    token_expires_at: str | None = None  # None: the collector's tokens never expire
    token_issued_at: str | None = None  # None: at registration

    def needs_renewal(self, now: datetime.datetime) -> bool:
        """Tell whether the token is past half its life: time to renew it, with the other
        half left for retries."""
        if self.token_expires_at is None:
            return False
        issued = times.parse_rfc3339(self.token_issued_at or self.registered_at)
        expires = times.parse_rfc3339(self.token_expires_at)
        return now >= issued + (expires - issued) / 2

    def serves(self, collector_url: str | None) -> bool:
        """Tell whether this identity was issued by ``collector_url``."""
        return collector_url is not None and same_collector(self.collector, collector_url)


def same_collector(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def ensure_state_dir(state_dir: Path) -> Path:
    """Create the state dir (0700) if needed and return it."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StateError(f"{state_dir}: cannot create the state dir ({e.strerror})") from None
    return state_dir


def lock_state_dir(state_dir: Path) -> int:
    """Take the state dir for this process (one `run` per spool); return the lock's descriptor.

    The lock is flock(2): the kernel releases it when the process dies, even by kill -9.
    """
    fd = os.open(ensure_state_dir(state_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(f"{state_dir}: another surblocage-probe run uses this state dir") from None
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, readable by its owner only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX: a rename lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_bytes(doc: Any) -> bytes:
    """Return ``doc`` as the bytes of a state file (one JSON document and a newline)."""
    return json.dumps(doc, ensure_ascii=False, indent=1).encode() + b"\n"


def read_json(path: Path) -> Any:
    """Return the JSON content of a state file, or None when it does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"{path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise StateError(f"{path}: not valid JSON ({e})") from None


def load_identity(state_dir: Path) -> Identity | None:
    """Return the identity kept in ``state_dir``, or None when the probe never registered."""
    path = state_dir / IDENTITY_FILE
    data = read_json(path)
    if data is None:
        return None
    try:
        optional = {k: text_field(data, k) for k in OPTIONAL if data.get(k) is not None}
        ident = Identity(
            probe_id=text_field(data, "probe_id"),
            token=text_field(data, "token"),
            collector=text_field(data, "collector"),
            registered_at=text_field(data, "registered_at"),
            **optional,
        )
        ident.needs_renewal(datetime.datetime.now(datetime.UTC))  # its times parse
        return ident
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise StateError(f"{path}: {e}; remove it and run `surblocage-probe register`") from None


def save_identity(
    state_dir: Path, probe_id: str, token: str, collector: str, expires_at: str | None = None
) -> Identity:
    """Write a new identity to ``state_dir`` (0600, atomically) and return it."""
    now = times.rfc3339(datetime.datetime.now(datetime.UTC), "seconds")
    ident = Identity(probe_id, token, collector.rstrip("/"), now, expires_at, now)
    _write_identity(state_dir, ident)
    return ident


def save_renewed(state_dir: Path, ident: Identity, token: str, expires_at: str | None) -> Identity:
    """Keep a renewed token in place of the identity's (atomically: the old or the new token
    is on disk, never neither) and return the new identity."""
    now = times.rfc3339(datetime.datetime.now(datetime.UTC), "seconds")
    renewed = dataclasses.replace(
        ident, token=token, token_expires_at=expires_at, token_issued_at=now
    )
    _write_identity(state_dir, renewed)
    return renewed


def _write_identity(state_dir: Path, ident: Identity) -> None:
    doc = {k: v for k, v in dataclasses.asdict(ident).items() if v is not None}
    write_private(ensure_state_dir(state_dir) / IDENTITY_FILE, json_bytes(doc))
