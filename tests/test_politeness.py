"""Politeness: Retry-After, retried methods, per-host and global limits, limits vs. timeouts.

Measured where it matters: at the recording server on 127.0.0.1 (``127.0.0.1`` and
``localhost`` reach the same server and count as two hosts), or on a virtual clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from itertools import pairwise
from typing import Any
from urllib.parse import quote

import pytest

import fastreq
from fastreq import (
    ConfigurationError,
    ConnectError,
    FastRequests,
    HostLimit,
    PartialFailureError,
    RetryConfig,
    RetryExhaustedError,
)
from fastreq.backends import available_backends
from fastreq.backends.base import RequestConfig
from fastreq.testing import MockBackend, make_response

from ._clock import FakeClock, VirtualClock
from ._server import Hit, TestServer

#: Pure pipeline policy does not depend on the backend: one fast backend is enough.
POLICY_BACKEND = "aiohttp" if "aiohttp" in available_backends() else available_backends()[0]
NO_JITTER = RetryConfig(max_retries=3, backoff_base=0.25, jitter=0)


@pytest.fixture(autouse=True)
def _no_fastreq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FASTREQ_"):
            monkeypatch.delenv(name)


def other_host(server: TestServer, path: str) -> str:
    """The same server under the host name ``localhost`` (a second host for the client)."""
    return server.url(path).replace("://127.0.0.1:", "://localhost:", 1)


def host_of_hit(hit: Hit) -> str:
    return hit.headers.get("host", "").rsplit(":", 1)[0]


def max_started_in_window(times: Iterable[float], window: float) -> int:
    """The most start times found in any closed window of ``window`` seconds."""
    starts = sorted(times)
    best = j = 0
    for i, t in enumerate(starts):
        while t - starts[j] > window:
            j += 1
        best = max(best, i - j + 1)
    return best


def max_overlap(starts: Iterable[float], duration: float) -> int:
    """Most intervals ``[start, start + duration)`` overlapping at one instant."""
    events = sorted([(s, 1) for s in starts] + [(s + duration, -1) for s in starts])
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


class Recorder:
    """Records the fake sleeps the pipeline asks for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


# -- Retry-After -------------------------------------------------------------------------


def test_retry_after_seconds_replaces_backoff(server: TestServer, backend_name: str) -> None:
    rec = Recorder()
    out = fastreq.fastreq(
        server.url("/flaky/ra/1?status=429&retry_after=7"), backend=backend_name,
        retry=NO_JITTER, sleep=rec.sleep, return_type="response",
    )
    assert out.status_code == 200
    assert rec.delays == [7.0]
    assert server.flaky_counts["ra"] == 2


def test_retry_after_http_date_is_honoured(server: TestServer) -> None:
    rec = Recorder()
    when = datetime.now(timezone.utc) + timedelta(seconds=40)
    date = quote(format_datetime(when, usegmt=True))
    out = fastreq.fastreq(
        server.url(f"/flaky/date/1?status=503&retry_after={date}"), backend=POLICY_BACKEND,
        retry=NO_JITTER, sleep=rec.sleep,
    )
    assert out == {"hits": 2}
    [delay] = rec.delays
    assert 37 <= delay <= 41  # second resolution of HTTP dates, test runtime


def test_retry_after_in_the_past_retries_at_once(server: TestServer) -> None:
    rec = Recorder()
    past = quote(format_datetime(datetime(2001, 1, 1, tzinfo=timezone.utc), usegmt=True))
    out = fastreq.fastreq(
        server.url(f"/flaky/past/1?status=429&retry_after={past}"), backend=POLICY_BACKEND,
        retry=NO_JITTER, sleep=rec.sleep,
    )
    assert out == {"hits": 2}
    assert rec.delays == []


@pytest.mark.parametrize(
    ("status", "retry_after", "cap"), [(429, "3600", 60.0), (503, "600", None)]
)
def test_retry_after_over_the_cap_fails_fast(
    server: TestServer, status: int, retry_after: str, cap: float | None
) -> None:
    rec = Recorder()
    retry = RetryConfig(retry_after_cap=cap) if cap is not None else RetryConfig()  # 120 s
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(
            server.url(f"/flaky/cap/5?status={status}&retry_after={retry_after}"),
            backend=POLICY_BACKEND, retry=retry, sleep=rec.sleep,
        )
    [failure] = info.value.failures
    assert isinstance(failure.error, RetryExhaustedError)
    assert "above the cap" in str(failure.error)
    assert retry_after in str(failure.error)
    assert failure.attempts == 1 == failure.error.attempts
    assert failure.response is not None
    assert failure.response.status_code == status
    assert failure.response.headers["retry-after"] == retry_after
    assert rec.delays == []  # no worker parked for an hour
    assert server.flaky_counts["cap"] == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "Wed, 99 Foo 2026 25:00:00 GMT", ""])
def test_invalid_retry_after_is_ignored(server: TestServer, value: str) -> None:
    rec = Recorder()
    out = fastreq.fastreq(
        server.url(f"/flaky/bad/1?status=503&retry_after={quote(value)}"),
        backend=POLICY_BACKEND, retry=NO_JITTER, sleep=rec.sleep,
    )
    assert out == {"hits": 2}
    assert rec.delays == [0.25]  # the ordinary backoff


def test_retry_after_ignored_when_not_respected(server: TestServer) -> None:
    rec = Recorder()
    retry = RetryConfig(backoff_base=0.25, jitter=0, respect_retry_after=False)
    out = fastreq.fastreq(
        server.url("/flaky/nrs/1?status=429&retry_after=3600"), backend=POLICY_BACKEND,
        retry=retry, sleep=rec.sleep,
    )
    assert out == {"hits": 2}
    assert rec.delays == [0.25]


def test_exhausted_429_keeps_the_last_response(server: TestServer) -> None:
    rec = Recorder()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(
            server.url("/flaky/ex/9?status=429&retry_after=2"), backend=POLICY_BACKEND,
            retry=RetryConfig(max_retries=2), sleep=rec.sleep,
        )
    [failure] = info.value.failures
    assert isinstance(failure.error, RetryExhaustedError)
    assert failure.attempts == 3
    assert failure.response is not None and failure.response.status_code == 429
    assert rec.delays == [2.0, 2.0]
    assert server.flaky_counts["ex"] == 3


# -- which methods are retried -----------------------------------------------------------


def test_post_not_retried_by_default_but_on_request(server: TestServer) -> None:
    rec = Recorder()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/flaky/p1/1"), method="POST", json={"x": 1},
                        backend=POLICY_BACKEND, retry=NO_JITTER, sleep=rec.sleep)
    [failure] = info.value.failures
    assert failure.attempts == 1
    assert failure.response is not None and failure.response.status_code == 503
    assert "POST is not retried" in str(failure.error)
    assert server.flaky_counts["p1"] == 1

    out = fastreq.fastreq(
        server.url("/flaky/p2/1"), method="POST", json={"x": 1}, backend=POLICY_BACKEND,
        retry=RetryConfig(retry_methods=None, backoff_base=0.25, jitter=0), sleep=rec.sleep,
    )
    assert out == {"hits": 2}
    assert [h.method for h in server.hits_for("/flaky/p2")] == ["POST", "POST"]


def test_put_is_idempotent_and_retried(server: TestServer) -> None:
    rec = Recorder()
    out = fastreq.fastreq(server.url("/flaky/put/1"), method="PUT", data=b"x",
                          backend=POLICY_BACKEND, retry=NO_JITTER, sleep=rec.sleep)
    assert out == {"hits": 2}


def test_connection_refused_is_retried_even_for_post(
    refused_url: str, backend_name: str
) -> None:
    rec = Recorder()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(refused_url, method="POST", json={"a": 1}, backend=backend_name,
                        retry=RetryConfig(max_retries=2, jitter=0, backoff_base=0.5),
                        sleep=rec.sleep)
    [failure] = info.value.failures
    assert isinstance(failure.error, ConnectError)
    assert failure.attempts == 3
    assert rec.delays == [0.5, 1.0]


# -- per-host concurrency, measured at the server ---------------------------------------


def test_per_host_concurrency_at_the_server(server: TestServer, backend_name: str) -> None:
    delay = 0.15
    urls: list[str] = []
    for _ in range(5):
        urls += [server.url(f"/slow?delay={delay}"), other_host(server, f"/slow?delay={delay}")]
    out = fastreq.fastreq(urls, backend=backend_name, concurrency=10, per_host_concurrency=2)
    assert out == [{"slept": delay}] * 10
    assert len(server.hits) == 10
    assert server.max_in_flight <= 4
    by_host: dict[str, list[float]] = {}
    for hit in server.hits:
        by_host.setdefault(host_of_hit(hit), []).append(hit.at)
    assert sorted(by_host) == ["127.0.0.1", "localhost"]
    for starts in by_host.values():
        assert len(starts) == 5
        assert max_overlap(starts, delay) <= 2


def test_per_host_concurrency_one_host(server: TestServer) -> None:
    fastreq.fastreq([server.url("/slow?delay=0.1")] * 8, backend=POLICY_BACKEND,
                    concurrency=10, per_host_concurrency=2)
    assert len(server.hits) == 8
    assert server.max_in_flight <= 2


def test_slow_host_does_not_hold_back_the_others(server: TestServer) -> None:
    slow = [server.url("/slow?delay=0.25")] * 4  # host A, one at a time
    fast = [other_host(server, f"/json/{i}") for i in range(16)]  # host B
    out = fastreq.fastreq(
        slow + fast, backend=POLICY_BACKEND, concurrency=4,
        host_limits={"127.0.0.1": HostLimit(concurrency=1)},
    )
    assert out == [{"slept": 0.25}] * 4 + [{"n": i} for i in range(16)]
    a_starts = sorted(h.at for h in server.hits if host_of_hit(h) == "127.0.0.1")
    b_starts = [h.at for h in server.hits if host_of_hit(h) == "localhost"]
    assert len(a_starts) == 4 and len(b_starts) == 16
    # A's requests go one after another...
    assert all(later - earlier >= 0.2 for earlier, later in pairwise(a_starts))
    # ...and every B request started before A's second one could (A took only one slot).
    assert max(b_starts) < a_starts[1]


def test_host_limits_override_one_host(server: TestServer) -> None:
    async def main() -> tuple[int, int]:
        async with FastRequests(
            backend=POLICY_BACKEND, concurrency=10, per_host_concurrency=3,
            host_limits={"LocalHost": HostLimit(concurrency=1)},
        ) as client:
            await client.request([other_host(server, "/slow?delay=0.1")] * 4)
            limited = server.max_in_flight
            server.reset()
            await client.request([server.url("/slow?delay=0.1")] * 6)
            return limited, server.max_in_flight

    limited, default = asyncio.run(main())
    assert limited == 1
    assert 1 < default <= 3


# -- per-host rate limits, measured at the server ---------------------------------------


def test_per_host_rate_limit_at_the_server(server: TestServer) -> None:
    rate, burst, count = 20.0, 1, 20
    began = time.monotonic()
    fastreq.fastreq([server.url(f"/json/{i}") for i in range(count)], backend=POLICY_BACKEND,
                    concurrency=8, per_host_rate_limit=rate, per_host_burst=burst)
    starts = [h.at for h in server.hits]
    assert len(starts) == count
    for window in (0.0, 0.1, 0.25, 0.5):
        assert max_started_in_window(starts, window) <= rate * window + burst
    # it really was limited: 20 starts need (20 - burst) / rate seconds
    assert max(starts) - began >= (count - burst) / rate * 0.95


def test_per_host_rate_limits_are_per_host(server: TestServer) -> None:
    rate = 20.0
    urls: list[str] = []
    for i in range(8):
        urls += [server.url(f"/json/{i}"), other_host(server, f"/json/{i}")]
    fastreq.fastreq(urls, backend=POLICY_BACKEND, concurrency=8, per_host_rate_limit=rate)
    assert len(server.hits) == 16
    everything = [h.at for h in server.hits]
    for host in ("127.0.0.1", "localhost"):
        starts = [h.at for h in server.hits if host_of_hit(h) == host]
        assert len(starts) == 8
        assert max_started_in_window(starts, 0.2) <= rate * 0.2 + 1
    # two hosts, two buckets: together they beat one host's limit
    assert max_started_in_window(everything, 0.2) > rate * 0.2 + 1


def test_host_limits_rate_override(server: TestServer) -> None:
    urls: list[str] = []
    for i in range(6):
        urls += [server.url(f"/json/{i}"), other_host(server, f"/json/{i}")]
    fastreq.fastreq(urls, backend=POLICY_BACKEND, concurrency=8,
                    host_limits={"localhost": HostLimit(rate_limit=10)})
    limited = [h.at for h in server.hits if host_of_hit(h) == "localhost"]
    free = [h.at for h in server.hits if host_of_hit(h) == "127.0.0.1"]
    assert len(limited) == len(free) == 6
    assert max_started_in_window(limited, 0.25) <= 10 * 0.25 + 1
    assert max(free) < sorted(limited)[2]  # the other host was not limited at all


# -- limits on a virtual clock (exact schedules, no real waiting) -----------------------


def _timed_backend(clock: VirtualClock, slow: dict[str, float] | None = None
                   ) -> tuple[MockBackend, list[tuple[str, float]]]:
    started: list[tuple[str, float]] = []

    async def handler(config: RequestConfig) -> Any:
        host = config.url.split("/")[2]
        started.append((host, clock.now - clock.start))
        if slow and host in slow:
            await clock.sleep(slow[host])
        return make_response(json={})

    return MockBackend(handler), started


def test_global_rate_limit_schedule_on_a_virtual_clock() -> None:
    clock = VirtualClock()
    backend, started = _timed_backend(clock)

    async def main() -> None:
        client = FastRequests(backend=backend, concurrency=20, rate_limit=10,
                              rate_limit_burst=3, clock=clock, sleep=clock.sleep)
        await clock.run(client.request([f"http://h{i}.test/" for i in range(13)]))

    asyncio.run(main())
    times = sorted(t for _, t in started)
    assert times == pytest.approx([0.0] * 3 + [0.1 * k for k in range(1, 11)])


def test_per_host_rate_is_kept_when_global_slots_are_contended() -> None:
    # Host a is slow and takes the global slots; host b (10/s) waits for them. Its starts
    # must still be spaced by its rate once slots free up: no bunching of late tokens.
    clock = VirtualClock()
    backend, started = _timed_backend(clock, slow={"a.test": 0.3})
    urls: list[str] = []
    for i in range(6):
        urls += [f"http://a.test/{i}", f"http://b.test/{i}"]

    async def main() -> None:
        client = FastRequests(backend=backend, concurrency=2, clock=clock, sleep=clock.sleep,
                              host_limits={"b.test": HostLimit(rate_limit=10)})
        await clock.run(client.request(urls))

    asyncio.run(main())
    b_times = sorted(t for host, t in started if host == "b.test")
    assert len(b_times) == 6
    gaps = [later - earlier for earlier, later in pairwise(b_times)]
    assert min(gaps) >= 0.1 - 1e-9


def test_per_host_rate_waiters_hold_no_global_slot() -> None:
    # b.test allows 1 request/s; a.test is unlimited. With one global slot, a.test must
    # not wait behind b.test's token waits.
    clock = VirtualClock()
    backend, started = _timed_backend(clock)
    urls = [f"http://b.test/{i}" for i in range(3)] + [f"http://a.test/{i}" for i in range(3)]

    async def main() -> None:
        client = FastRequests(backend=backend, concurrency=1, clock=clock, sleep=clock.sleep,
                              host_limits={"b.test": HostLimit(rate_limit=1)})
        await clock.run(client.request(urls))

    asyncio.run(main())
    assert [t for host, t in started if host == "a.test"] == [0.0, 0.0, 0.0]
    assert [t for host, t in started if host == "b.test"] == pytest.approx([0.0, 1.0, 2.0])


# -- configuration of limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": 0}, "rate_limit must be > 0"),
        ({"rate_limit": -1}, "rate_limit must be > 0"),
        ({"rate_limit": float("nan")}, "rate_limit must be > 0"),
        ({"rate_limit": 5, "rate_limit_burst": 0}, "rate_limit_burst"),
        ({"per_host_rate_limit": 0}, "rate_limit must be > 0"),
        ({"per_host_rate_limit": -3}, "rate_limit must be > 0"),
        ({"per_host_concurrency": 0}, "per-host concurrency"),
        ({"per_host_rate_limit": 1, "per_host_burst": 0}, "rate_limit_burst"),
        ({"host_limits": {"a.test": 3}}, "host_limits\\['a.test'\\] must be a HostLimit"),
        ({"max_retries": 5, "retry": RetryConfig(max_retries=2)}, "not both"),
    ],
)
def test_limit_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FastRequests(backend=MockBackend(lambda c: make_response()), **options)


def test_host_limit_checks_its_values() -> None:
    with pytest.raises(ConfigurationError, match="rate_limit must be > 0"):
        HostLimit(rate_limit=-1)
    with pytest.raises(ConfigurationError, match="per-host concurrency"):
        HostLimit(concurrency=True)


# -- waiting for a token or a slot never counts against the timeout ----------------------


def test_waiting_for_a_rate_token_is_not_timed(server: TestServer) -> None:
    began = time.monotonic()
    out = fastreq.fastreq([server.url(f"/json/{i}") for i in range(9)], backend=POLICY_BACKEND,
                          rate_limit=10, rate_limit_burst=1, timeout=0.3, max_retries=0)
    assert out == [{"n": i} for i in range(9)]
    assert time.monotonic() - began >= 0.7  # the last one waited far longer than 0.3 s


def test_waiting_for_a_host_token_is_not_timed(server: TestServer) -> None:
    out = fastreq.fastreq([server.url(f"/json/{i}") for i in range(7)], backend=POLICY_BACKEND,
                          per_host_rate_limit=10, timeout=0.3, max_retries=0)
    assert out == [{"n": i} for i in range(7)]


def test_waiting_for_a_slot_is_not_timed(server: TestServer, backend_name: str) -> None:
    out = fastreq.fastreq([server.url("/slow?delay=0.15")] * 6, backend=backend_name,
                          concurrency=2, timeout=0.4, max_retries=0)
    assert out == [{"slept": 0.15}] * 6


# -- the retry loop on a fake clock ------------------------------------------------------


def test_backoff_sleeps_go_through_the_injected_clock() -> None:
    clock = FakeClock()
    calls = 0

    def handler(config: RequestConfig) -> Any:
        nonlocal calls
        calls += 1
        return make_response(503 if calls < 4 else 200, json={"calls": calls})

    out = fastreq.fastreq(
        "http://x.test/", backend=MockBackend(handler), clock=clock, sleep=clock.sleep,
        retry=RetryConfig(max_retries=5, backoff_base=1, backoff_multiplier=3, jitter=0),
    )
    assert out == {"calls": 4}
    assert clock.sleeps == [1, 3, 9]


def test_rate_limits_hold_across_calls_on_one_client() -> None:
    clock = VirtualClock()
    backend, started = _timed_backend(clock)

    async def main() -> None:
        client = FastRequests(backend=backend, rate_limit=2, rate_limit_burst=1,
                              per_host_rate_limit=1, clock=clock, sleep=clock.sleep)
        for i in range(4):
            await clock.run(client.request(f"http://a.test/{i}"))

    asyncio.run(main())
    assert [t for _, t in started] == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_host_rate_limited_inputs_start_in_input_order() -> None:
    clock = VirtualClock()
    order: list[str] = []

    async def handler(config: RequestConfig) -> Any:
        order.append(config.url)
        return make_response(json={})

    urls = [f"http://b.test/{i}" for i in range(8)]

    async def main() -> None:
        client = FastRequests(backend=MockBackend(handler), concurrency=8, clock=clock,
                              sleep=clock.sleep, per_host_rate_limit=10)
        await clock.run(client.request(urls))

    asyncio.run(main())
    assert order == urls
    assert clock.now - clock.start == pytest.approx(0.7)


def test_limiter_try_acquire_and_delay_on_a_fake_clock() -> None:
    from fastreq import AsyncRateLimiter, RateLimitConfig

    clock = FakeClock()
    limiter = AsyncRateLimiter(RateLimitConfig(rate=4, burst=2), clock=clock, sleep=clock.sleep)
    assert limiter.delay() == 0.0
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()  # burst used up; nothing booked by the failed try
    assert limiter.delay() == pytest.approx(0.25)
    assert limiter.reserve() == pytest.approx(0.25)  # a booking pushes the next free token
    assert limiter.delay() == pytest.approx(0.5)
    asyncio.run(limiter.wait_until_free())
    assert clock.sleeps == [pytest.approx(0.5)]
    assert limiter.try_acquire() and not limiter.try_acquire()


@pytest.mark.parametrize("option", ["rate_limit", "per_host_rate_limit"])
def test_many_waiters_sleep_once_each(option: str) -> None:
    # 300 inputs waiting on one bucket: one timer per start, no thundering herd or polling.
    clock = VirtualClock()
    backend, started = _timed_backend(clock)
    options: dict[str, Any] = {option: 100}

    async def main() -> None:
        client = FastRequests(backend=backend, concurrency=300, clock=clock,
                              sleep=clock.sleep, **options)
        await clock.run(client.request([f"http://one.test/{i}" for i in range(300)]))

    asyncio.run(main())
    assert len(started) == 300
    assert len(clock.sleeps) <= 300
    times = sorted(t for _, t in started)
    for window in (0.05, 0.5, 2.0):
        assert max_started_in_window(times, window) <= 100 * window + 5 + 1e-9
