"""Rate limits: :class:`TokenBucket` (sync, non-blocking) and :class:`AsyncRateLimiter`.

Both implement the same token bucket: ``rate`` tokens per second, at most ``burst`` saved up.
Over any window of ``w`` seconds no more than ``rate * w + burst`` requests start.

The async limiter hands out start times in arrival order (a virtual schedule, as in GCRA):
each waiter computes its own start time once and sleeps exactly until then, so a thousand
waiters cost a thousand timers, not a busy loop, and nobody overtakes anybody.

Example::

    limiter = AsyncRateLimiter(RateLimitConfig(rate=10, burst=5))
    await limiter.acquire()      # returns at once for the first 5, then every 0.1 s
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastreq.exceptions import ConfigurationError

__all__ = ["AsyncRateLimiter", "HostLimit", "RateLimitConfig", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateLimitConfig:
    """``rate`` requests per second, with bursts of up to ``burst`` requests."""

    rate: float
    burst: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise ConfigurationError(f"rate_limit must be a number, got {self.rate!r}")
        if not self.rate > 0 or math.isinf(self.rate):
            raise ConfigurationError(
                f"rate_limit must be > 0 requests per second, got {self.rate!r} "
                "(use rate_limit=None for no limit)"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigurationError(f"rate_limit_burst must be an int >= 1, got {self.burst!r}")


@dataclass(frozen=True)
class HostLimit:
    """Limits for one host: requests in flight, and requests per second with a burst.

    Example: ``host_limits={"api.github.com": HostLimit(concurrency=2, rate_limit=1)}``
    """

    concurrency: int | None = None
    rate_limit: float | None = None
    burst: int = 1

    def __post_init__(self) -> None:
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ConfigurationError(
                f"per-host concurrency must be an int >= 1, got {self.concurrency!r}"
            )
        if self.rate_limit is not None:
            RateLimitConfig(self.rate_limit, self.burst)  # validates


class TokenBucket:
    """A classic token bucket; :meth:`try_acquire` never blocks.

    ``wait_time()`` tells how long until the next token.
    """

    def __init__(self, config: RateLimitConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._tokens = float(config.burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.config.burst), self._tokens + elapsed * self.config.rate)
            self._last = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_acquire(self, tokens: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        self._refill()
        missing = tokens - self._tokens
        return 0.0 if missing <= 0 else missing / self.config.rate


class AsyncRateLimiter:
    """Awaitable token bucket with FIFO order and one sleep per waiter.

    ``clock`` and ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._interval = 1.0 / config.rate
        self._tolerance = (config.burst - 1) * self._interval
        self._tat = clock()  # theoretical arrival time of the next conforming request

    def reserve(self) -> float:
        """Book the next start slot; returns how long to wait before starting (0: now)."""
        now = self._clock()
        tat = self._tat if self._tat > now else now
        start = tat - self._tolerance
        self._tat = tat + self._interval
        wait = start - now
        return wait if wait > 1e-9 else 0.0  # float residue is not worth a timer

    async def acquire(self) -> None:
        """Wait for this caller's turn."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    def delay(self) -> float:
        """Seconds until a token is free, without booking one (0: one is free now)."""
        wait = self._tat - self._tolerance - self._clock()
        return wait if wait > 1e-9 else 0.0

    def try_acquire(self) -> bool:
        """Take a token if one is free at this instant; never waits, never books ahead."""
        if self.delay() > 0:
            return False
        now = self._clock()
        self._tat = (self._tat if self._tat > now else now) + self._interval
        return True

    async def wait_until_free(self) -> None:
        """Sleep until a token is free (without taking it: follow with :meth:`try_acquire`)."""
        delay = self.delay()
        while delay > 0:
            await self._sleep(delay)
            delay = self.delay()

    async def __aenter__(self) -> AsyncRateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *args: object) -> None:
        return None
