"""Probe registration and tokens: ids and tokens are random, tokens are stored hashed (SHA-256).

Also the per-probe and per-source rate limits. A source address is used only as a rate-limit key,
and even then only as a keyed hash held in memory for a minute: it is never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass


def new_probe_id() -> str:
    """Return a random probe id, not tied to anyone."""
    return f"p-{uuid.uuid4().hex[:20]}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the stored form of a token: a token is long and random, so SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """Return the token of an 'Authorization: Bearer <token>' header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    # a token is URL-safe base64: a header of other bytes cannot hold one (nor be hashed as text)
    if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
        return None
    return token.strip()


def enrollment_ok(expected: str | None, given: str | None) -> bool:
    """Registration is open without an enrollment key; with one, the key must match."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int, clock: object = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._salt = secrets.token_bytes(16)

    def allow(self, key: str) -> bool:
        """Take one request from ``key``'s bucket; False when it is empty."""
        now = self.clock()  # type: ignore[operator]
        k = hmac.new(self._salt, key.encode(), hashlib.sha256).hexdigest()
        b = self._buckets.get(k)
        if b is None:
            if len(self._buckets) > 100_000:
                self._forget(now)
            b = self._buckets[k] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _forget(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < full}
