"""The sweep's rate limiter on a fake clock: when each new connection may start."""

from __future__ import annotations

import asyncio

from probe.sweep import RateLimiter


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def _times(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    starts: list[float] = []

    async def one() -> None:
        await limiter.take()
        starts.append(round(clock.now - 100.0, 6))

    await asyncio.gather(*(one() for _ in range(n)))
    return starts


async def test_one_token_a_period_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    assert await _times(limiter, clock, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_a_burst_is_spent_first_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3.0, clock=clock, sleep=clock.sleep)
    assert await _times(limiter, clock, 5) == [0.0, 0.0, 0.0, 0.5, 1.0]


async def test_idle_time_saves_at_most_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=2.0, clock=clock, sleep=clock.sleep)
    await _times(limiter, clock, 2)
    clock.now += 60.0  # a minute without connections
    start = clock.now - 100.0
    times = await _times(limiter, clock, 4)
    assert [round(t - start, 6) for t in times] == [0.0, 0.0, 0.1, 0.2]


async def test_no_sleep_while_tokens_last() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=1.0, clock=clock, sleep=clock.sleep)
    await limiter.take()
    assert clock.slept == []
    await limiter.take()
    assert clock.slept == [1.0]
