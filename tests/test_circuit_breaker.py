"""The per-host circuit breaker: unit tests on a fake clock, then end to end against the
recording server (what was *not* sent is counted at the server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastreq
from fastreq import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ConfigurationError,
    ConnectError,
    FastRequests,
    PartialFailureError,
    RetryExhaustedError,
)
from fastreq.backends import available_backends
from fastreq.utils.circuit_breaker import CircuitBreaker

from ._clock import FakeClock
from ._server import TestServer

BACKEND = "aiohttp" if "aiohttp" in available_backends() else available_backends()[0]
HOST = "127.0.0.1"


def localhost(server: TestServer, path: str) -> str:
    return server.url(path).replace("://127.0.0.1:", "://localhost:", 1)


# -- unit: CircuitBreaker on a fake clock ------------------------------------------------


def test_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=3, recovery_time=10), clock)
    for _ in range(2):
        breaker.record_failure("a")
    breaker.record_success("a")  # not consecutive any more
    breaker.record_failure("a")
    breaker.record_failure("a")
    assert breaker.state("a") == "closed"
    assert breaker.before_request("a") == 0.0
    breaker.record_failure("a")
    assert breaker.state("a") == "open"
    with pytest.raises(CircuitOpenError, match="circuit open for a: 3 consecutive") as info:
        breaker.before_request("a")
    assert info.value.host == "a"
    assert breaker.state("b") == "closed" and breaker.before_request("b") == 0.0


def test_half_open_single_trial_then_close() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, recovery_time=10), clock)
    breaker.record_failure("a")
    clock.now += 9.9
    with pytest.raises(CircuitOpenError, match=r"next trial in 0\.1s"):
        breaker.before_request("a")
    clock.now += 0.1
    assert breaker.state("a") == "half-open"
    assert breaker.before_request("a") == 0.0  # the one trial
    with pytest.raises(CircuitOpenError):
        breaker.before_request("a")  # everybody else waits for its outcome
    breaker.record_success("a")
    assert breaker.state("a") == "closed"
    assert breaker.before_request("a") == 0.0


def test_half_open_failure_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, recovery_time=10), clock)
    breaker.record_failure("a")
    breaker.record_failure("a")
    clock.now += 10
    assert breaker.before_request("a") == 0.0
    breaker.record_failure("a")  # the trial failed
    assert breaker.state("a") == "open"
    clock.now += 9
    with pytest.raises(CircuitOpenError):
        breaker.before_request("a")
    clock.now += 1
    assert breaker.before_request("a") == 0.0


def test_wait_mode_returns_the_time_to_wait() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_threshold=1, recovery_time=30, wait=True), clock
    )
    breaker.record_failure("a")
    clock.now += 12
    assert breaker.before_request("a") == pytest.approx(18)
    clock.now += 18
    assert breaker.before_request("a") == 0.0  # trial
    assert 0 < breaker.before_request("a") <= 1.0  # poll again soon for the outcome


def test_reset() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1), clock)
    breaker.record_failure("a")
    breaker.record_failure("b")
    breaker.reset("a")
    assert breaker.state("a") == "closed" and breaker.state("b") == "open"
    breaker.reset()
    assert breaker.state("b") == "closed"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"recovery_time": 0}, "recovery_time"),
        ({"recovery_time": -1}, "recovery_time"),
    ],
)
def test_config_is_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CircuitBreakerConfig(**options)


# -- end to end, counted at the server ----------------------------------------------------


def _client(clock: FakeClock, **options: Any) -> FastRequests:
    config = options.pop("breaker", CircuitBreakerConfig(failure_threshold=3, recovery_time=30))
    return FastRequests(backend=BACKEND, concurrency=options.pop("concurrency", 1),
                        max_retries=options.pop("max_retries", 0), circuit_breaker=config,
                        clock=clock, sleep=clock.sleep, **options)


async def _outcome(client: FastRequests, urls: list[str]) -> list[Any]:
    """Result per input, or the failure's error."""
    try:
        return list(await client.request(urls))
    except PartialFailureError as exc:
        out: list[Any] = list(exc.results)
        for failure in exc.failures:
            out[failure.index] = failure.error
        return out


def test_open_circuit_fails_fast_and_sends_nothing(server: TestServer) -> None:
    clock = FakeClock()
    urls: list[str] = []
    for i in range(6):
        urls += [server.url("/status/503"), localhost(server, f"/json/{i}")]

    async def main() -> list[Any]:
        async with _client(clock) as client:
            return await _outcome(client, urls)

    out = asyncio.run(main())
    failing, other = out[::2], out[1::2]
    assert [type(x) for x in failing] == [RetryExhaustedError] * 3 + [CircuitOpenError] * 3
    assert all("circuit open for 127.0.0.1" in str(x) for x in failing[3:])
    assert other == [{"n": i} for i in range(6)]  # the other host is not affected
    assert len(server.hits_for("/status/503")) == 3


def test_fail_fast_failures_record_zero_attempts(server: TestServer) -> None:
    clock = FakeClock()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq([server.url("/status/500")] * 3, backend=BACKEND, concurrency=1,
                        max_retries=0, clock=clock, sleep=clock.sleep,
                        circuit_breaker=CircuitBreakerConfig(failure_threshold=1))
    assert [f.attempts for f in info.value.failures] == [1, 0, 0]
    assert len(server.hits) == 1


def test_half_open_trial_success_closes(server: TestServer) -> None:
    clock = FakeClock()
    url = server.url("/flaky/h/3")  # three 503s, then 200s

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        async with _client(clock) as client:
            first = await _outcome(client, [url] * 3)
            still_open = await _outcome(client, [url] * 2)
            clock.now += 30
            recovered = await _outcome(client, [url] * 3)
            return first, still_open, recovered

    first, still_open, recovered = asyncio.run(main())
    assert all(isinstance(x, RetryExhaustedError) for x in first)
    assert all(isinstance(x, CircuitOpenError) for x in still_open)
    assert recovered == [{"hits": 4}, {"hits": 5}, {"hits": 6}]
    assert server.flaky_counts["h"] == 6


def test_half_open_trial_failure_reopens(server: TestServer) -> None:
    clock = FakeClock()
    url = server.url("/status/503")

    async def main() -> list[list[Any]]:
        async with _client(clock) as client:
            rounds = [await _outcome(client, [url] * 3)]
            clock.now += 30
            rounds.append(await _outcome(client, [url] * 3))
            clock.now += 29
            rounds.append(await _outcome(client, [url]))
            clock.now += 1
            rounds.append(await _outcome(client, [url] * 2))
            return rounds

    rounds = asyncio.run(main())
    kinds = [[type(x).__name__ for x in r] for r in rounds]
    assert kinds == [
        ["RetryExhaustedError"] * 3,
        ["RetryExhaustedError", "CircuitOpenError", "CircuitOpenError"],  # trial failed
        ["CircuitOpenError"],
        ["RetryExhaustedError", "CircuitOpenError"],
    ]
    assert len(server.hits) == 5


def test_only_one_trial_while_half_open(server: TestServer) -> None:
    clock = FakeClock()
    url = server.url("/status/503")

    async def main() -> list[Any]:
        async with _client(clock, concurrency=4) as client:
            await _outcome(client, [url] * 3)  # concurrency 4: exactly 3 sent, all fail
            server.reset()
            clock.now += 30
            return await _outcome(client, [url] * 4)

    out = asyncio.run(main())
    assert len(server.hits) == 1
    assert sorted(type(x).__name__ for x in out) == ["CircuitOpenError"] * 3 + [
        "RetryExhaustedError"
    ]


def test_wait_mode_waits_for_the_trial(server: TestServer) -> None:
    clock = FakeClock()
    url = server.url("/flaky/w/3")
    breaker = CircuitBreakerConfig(failure_threshold=3, recovery_time=30, wait=True)

    async def main() -> list[Any]:
        async with _client(clock, breaker=breaker) as client:
            await _outcome(client, [url] * 3)
            clock.sleeps.clear()
            return await _outcome(client, [url] * 2)

    assert asyncio.run(main()) == [{"hits": 4}, {"hits": 5}]
    assert clock.sleeps == [30.0]  # waited (on the fake clock) instead of failing


def test_retries_stop_when_the_circuit_opens(server: TestServer) -> None:
    clock = FakeClock()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/status/503"), backend=BACKEND, max_retries=10,
                        clock=clock, sleep=clock.sleep,
                        circuit_breaker=CircuitBreakerConfig(failure_threshold=3))
    [failure] = info.value.failures
    assert isinstance(failure.error, CircuitOpenError)
    assert failure.attempts == 3
    assert len(server.hits) == 3  # not hammered by ten retries


def test_transport_errors_count_and_4xx_do_not(server: TestServer, refused_url: str) -> None:
    clock = FakeClock()

    async def main() -> tuple[list[Any], list[Any]]:
        breaker = CircuitBreakerConfig(failure_threshold=2)
        async with _client(clock, breaker=breaker) as client:
            not_found = await _outcome(client, [server.url("/status/404")] * 4)
            refused = await _outcome(client, [refused_url] * 4)
            return not_found, refused

    not_found, refused = asyncio.run(main())
    assert len(not_found) == 4 and len(server.hits) == 4  # a 404 is an answer
    assert [type(x) for x in refused] == [ConnectError] * 2 + [CircuitOpenError] * 2


def test_off_by_default_and_true_means_defaults(server: TestServer) -> None:
    fastreq.fastreq([server.url("/status/503")] * 8, backend=BACKEND, max_retries=0,
                    return_none_on_failure=True, verbose=False)
    assert len(server.hits) == 8
    server.reset()
    fastreq.fastreq([server.url("/status/503")] * 8, backend=BACKEND, max_retries=0,
                    concurrency=1, circuit_breaker=True, return_none_on_failure=True,
                    verbose=False)
    assert len(server.hits) == 5  # the default threshold


def test_a_cancelled_trial_does_not_jam_the_host(server: TestServer) -> None:
    clock = FakeClock()

    async def main() -> Any:
        breaker = CircuitBreakerConfig(failure_threshold=1, recovery_time=30)
        async with _client(clock, breaker=breaker) as client:
            await _outcome(client, [server.url("/status/503")])
            clock.now += 30
            with pytest.raises(asyncio.TimeoutError):  # the trial is cut short
                await asyncio.wait_for(client.request(server.url("/slow?delay=2")), 0.2)
            return await _outcome(client, [server.url("/json/1")])

    assert asyncio.run(main()) == [{"n": 1}]
