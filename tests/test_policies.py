"""Retry policy and rate limiter on a fake clock: decisions, delays, bounds. No real sleeping."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from fastreq import (
    AsyncRateLimiter,
    ConfigurationError,
    ConnectError,
    ProtocolError,
    RateLimitConfig,
    ReadTimeoutError,
    RetryConfig,
    TLSError,
    TokenBucket,
)
from fastreq.testing import make_response
from fastreq.utils.retry import RetryPolicy, parse_retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(RetryConfig(backoff_base=1, backoff_multiplier=2, max_delay=5, jitter=0))
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(RetryConfig(backoff_base=1, jitter=0.5), rng=random.Random(1))
    delays = [policy.backoff(1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100


def test_error_decisions() -> None:
    policy = RetryPolicy(RetryConfig(max_retries=2, jitter=0))
    assert policy.on_error(ConnectError("x"), 1, "GET").retry
    assert policy.on_error(ReadTimeoutError("x"), 2, "GET").retry
    assert not policy.on_error(ReadTimeoutError("x"), 3, "GET").retry  # out of retries
    assert not policy.on_error(TLSError("x"), 1, "GET").retry  # not transient
    # a POST may have reached the server: not resent after a read timeout or a reset...
    assert not policy.on_error(ProtocolError("x"), 1, "POST").retry
    # ...but a refused connection proves it was never sent
    assert policy.on_error(ConnectError("x"), 1, "POST").retry
    anything_goes = RetryPolicy(RetryConfig(retry_methods=None))
    assert anything_goes.on_error(ProtocolError("x"), 1, "POST").retry


def test_retry_after_seconds_replaces_backoff_and_is_capped() -> None:
    policy = RetryPolicy(RetryConfig(retry_after_cap=60, jitter=0))
    resp = make_response(429, headers={"Retry-After": "7"})
    assert policy.on_response(resp, 1, "GET").delay == 7
    too_long = policy.on_response(make_response(503, headers={"Retry-After": "3600"}), 1, "GET")
    assert not too_long.retry and "above the cap" in too_long.reason
    bogus = policy.on_response(make_response(503, headers={"Retry-After": "soon"}), 1, "GET")
    assert bogus.retry and bogus.delay == policy.backoff(1)


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=lambda: now.timestamp()) == pytest.approx(30)
    assert parse_retry_after("Wed, 99 Foo 2026", now=lambda: 0.0) is None
    assert parse_retry_after("", now=lambda: 0.0) is None


def test_retry_config_validation() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        RetryConfig(max_retries=-1)
    with pytest.raises(ConfigurationError, match="jitter"):
        RetryConfig(jitter=2)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_rate_limit_must_be_positive(rate: float) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit"):
        RateLimitConfig(rate=rate)


def test_token_bucket_refills_on_the_fake_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimitConfig(rate=2, burst=3), clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_acquire() and not bucket.try_acquire()


def test_async_limiter_burst_then_steady_rate_in_order() -> None:
    clock = FakeClock()
    limiter = AsyncRateLimiter(RateLimitConfig(rate=10, burst=5), clock=clock, sleep=clock.sleep)
    start_times: list[tuple[int, float]] = []

    async def waiter(i: int) -> None:
        await limiter.acquire()
        start_times.append((i, clock.now))

    async def main() -> None:
        for i in range(25):  # reservations are made in call order
            await waiter(i)

    asyncio.run(main())
    assert [i for i, _ in start_times] == list(range(25))
    times = [t - 1000.0 for _, t in start_times]
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([0.1 * k for k in range(1, 21)])


def test_async_limiter_never_exceeds_rate_times_window_plus_burst() -> None:
    clock = FakeClock()
    rate, burst = 50.0, 5
    limiter = AsyncRateLimiter(RateLimitConfig(rate=rate, burst=burst), clock=clock,
                               sleep=clock.sleep)
    starts: list[float] = []

    async def main() -> None:
        waits = [limiter.reserve() for _ in range(1000)]  # 1000 concurrent waiters
        base = clock.now
        starts.extend(base + w for w in waits)

    asyncio.run(main())
    starts.sort()
    for window in (0.1, 0.5, 1.0, 3.0):
        j = 0
        for i in range(len(starts)):
            while starts[i] - starts[j] > window:
                j += 1
            assert i - j + 1 <= rate * window + burst + 1e-9
    achieved = (len(starts) - burst) / (starts[-1] - starts[0])
    assert achieved == pytest.approx(rate, rel=0.02)
