"""The aiohttp backend's lean parts change nothing seen: headers read lazily equal eager ones,
a header dict is handed straight to aiohttp only when aiohttp would send the same headers,
and long total timeouts kept by one timer per loop fail exactly as aiohttp's own would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from fastreq import PartialFailureError, RetryConfig, fastreq_async
from fastreq.backends import _aiohttp_deadline, _aiohttp_session
from fastreq.backends.aiohttp import AiohttpBackend
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import RequestTimeoutError

from ._clock import FakeClock
from ._server import TestServer

N = 20


def test_deferred_headers_read_as_eager_ones(server: TestServer) -> None:
    async def main() -> NormalizedResponse:
        async with AiohttpBackend() as backend:
            return await backend.request(RequestConfig(server.url("/set-cookies")))

    lazy = asyncio.run(main())
    assert lazy.has_header("set-cookie") and not lazy.has_header("Set-Cookie")
    eager = NormalizedResponse(lazy.status_code, lazy.header_items, lazy.content)
    assert lazy.get_all("Set-Cookie") == eager.get_all("set-cookie") and len(
        eager.get_all("set-cookie")) == 2
    assert lazy.headers == eager.headers and lazy.is_json == eager.is_json
    assert lazy.headers["set-cookie"] == ", ".join(eager.get_all("set-cookie"))
    lazy.headers = {"x": "1"}
    assert lazy.headers == {"x": "1"} and lazy.header_items == eager.header_items


def test_headers_are_handed_over_only_when_aiohttp_would_send_the_same() -> None:
    ua = {"User-Agent": "x"}
    assert _aiohttp_session.direct_headers(ua) is ua
    assert _aiohttp_session.direct_headers({"A": "1", "B": "2"}) is not None
    assert _aiohttp_session.direct_headers({"X-A": "1", "x-a": "2"}) is None
    assert _aiohttp_session.direct_headers({"authorization": "s"}) is None
    assert _aiohttp_session.direct_headers({"A": "1", "Authorization": "s"}) is None


def test_case_twins_are_merged_as_aiohttp_merges_them(server: TestServer) -> None:
    async def main() -> Any:
        async with AiohttpBackend() as backend:
            r = await backend.request(RequestConfig(
                server.url("/echo"), headers={"X-Twin": "1", "x-twin": "2"}))
            return r.json()["headers"].get("x-twin")

    assert asyncio.run(main()) == "2"  # aiohttp's own merge: the last one wins


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every total timeout kept by Deadlines, on a 50 ms grain (instead of 5 s and 1 s)."""
    monkeypatch.setattr(_aiohttp_deadline, "MIN_TOTAL", 0.0)
    monkeypatch.setattr(_aiohttp_deadline, "GRAIN", 0.05)
    _aiohttp_session.timeout_plan.cache_clear()
    yield
    _aiohttp_session.timeout_plan.cache_clear()


def test_long_totals_are_kept_by_one_timer(server: TestServer, short_deadlines: Any) -> None:
    urls = [server.url("/slow?delay=3") if i % 5 == 0 else server.url("/json")
            for i in range(N)]
    assert _aiohttp_session.timeout_plan(0.4)[1] is not None  # the total is left out
    clock = FakeClock()
    with pytest.raises(PartialFailureError) as info:
        asyncio.run(fastreq_async(urls, backend="aiohttp", concurrency=8, timeout=0.4,
                                  retry=RetryConfig(max_retries=1, jitter=0),
                                  sleep=clock.sleep, clock=clock))
    fails = info.value.failures
    assert {f.index for f in fails} == {i for i in range(N) if i % 5 == 0}
    assert {type(f.error) for f in fails} == {RequestTimeoutError}
    assert {f.attempts for f in fails} == {2} and "total timeout" in str(fails[0].error)
    results = info.value.results
    assert all(results[i] is not None for i in range(N) if i % 5)


def test_a_cancellation_from_outside_still_cancels(server: TestServer,
                                                   short_deadlines: Any) -> None:
    async def main() -> None:
        async with AiohttpBackend() as backend:
            config = RequestConfig(server.url("/slow?delay=3"), timeout=5.0)
            task = asyncio.ensure_future(backend.request(config))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # and a request that times out fails with the timeout error, not a cancellation
            with pytest.raises(RequestTimeoutError):
                await backend.request(RequestConfig(server.url("/slow?delay=3"), timeout=0.2))
            assert (await backend.request(RequestConfig(server.url("/json"), timeout=0.2))
                    ).status_code == 200

    asyncio.run(main())
