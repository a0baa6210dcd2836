"""The diagnostics' packet budget (per cycle) and rate (packets a second): never exceeded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Budget:
    """Packets left this cycle, reserved before a probe and refunded for what it did not send;
    and the pace: a probe of n packets starts n / pps seconds after the one before began."""

    def __init__(
        self,
        packets: int,
        pps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.packets, self.pps, self.clock, self.sleep = packets, pps, clock, sleep
        self.left = packets
        self._next = 0.0  # when the next probe may start (clock's time)

    def reset(self) -> None:
        """Start a new cycle: the whole budget is back."""
        self.left = self.packets

    @property
    def spent(self) -> int:
        return self.packets - self.left

    def reserve(self, n: int) -> bool:
        """Set aside ``n`` packets for one probe; False (nothing set aside) if fewer are left."""
        if n > self.left:
            return False
        self.left -= n
        return True

    def refund(self, n: int) -> None:
        """Give back packets reserved and not sent."""
        self.left = min(self.packets, self.left + max(0, n))

    async def pace(self, n: int) -> None:
        """Wait until ``n`` more packets keep the rate at most ``pps`` a second."""
        now = self.clock()
        start = max(now, self._next)
        self._next = start + n / self.pps
        if start > now:
            await self.sleep(start - now)
