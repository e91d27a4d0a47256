"""Async-iterator inputs through per-host lanes flow continuously: no chunk barriers.

Each test would deadlock (and fail by its timeout, never by a speed assert) if the lanes
took the async input in chunks, each drained before the next was read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fastreq import FastRequests, HostLimit, NormalizedResponse, Result
from fastreq.backends.base import RequestConfig
from fastreq.testing import MockBackend, make_response

STUCK = 20.0  # seconds a request waits for its release before giving up (never, when it works)


async def _all(client: FastRequests, urls: AsyncIterator[str]) -> list[Result]:
    async def main() -> list[Result]:
        return [r async for r in client.stream(urls)]

    return await asyncio.wait_for(main(), 60)


@pytest.mark.parametrize("limits", [
    {"per_host_concurrency": 3},
    {"host_limits": {"a": HostLimit(concurrency=2)}},
])
def test_a_slow_request_does_not_hold_back_later_inputs(limits: dict[str, object]) -> None:
    n = 1500  # more than the lanes read ahead (max(1000, 10 * concurrency)): one old chunk+
    finished = 0
    released = asyncio.Event()

    async def handler(config: RequestConfig) -> NormalizedResponse:
        nonlocal finished
        if config.url.endswith("/slow"):
            await asyncio.wait_for(released.wait(), STUCK)  # until every other one is done
            return make_response(json="slow")
        await asyncio.sleep(0)
        finished += 1
        if finished == n - 1:
            released.set()
        return make_response(json="fast")

    async def urls() -> AsyncIterator[str]:
        yield "http://a/slow"
        for i in range(1, n):
            await asyncio.sleep(0)
            yield f"http://{'ab'[i % 2]}/{i}"

    async def main() -> list[Result]:
        client = FastRequests(backend=MockBackend(handler), concurrency=8, max_retries=0,
                              **limits)  # type: ignore[arg-type]
        return await _all(client, urls())

    results = asyncio.run(main())
    assert sorted(r.index for r in results) == list(range(n))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert results[-1].index == 0 and results[-1].value == "slow"  # finished last of all


def test_a_slow_input_does_not_hold_back_inputs_already_read() -> None:
    done: set[int] = set()
    first_ten_done = asyncio.Event()

    async def handler(config: RequestConfig) -> NormalizedResponse:
        done.add(int(config.url.rsplit("/", 1)[1]))
        if done >= set(range(10)):
            first_ten_done.set()
        return make_response(json="ok")

    async def urls() -> AsyncIterator[str]:
        for i in range(20):
            if i == 10:  # the input is slow: the ten already read are fetched meanwhile
                await asyncio.wait_for(first_ten_done.wait(), STUCK)
            yield f"http://h{i % 3}/{i}"

    async def main() -> list[Result]:
        client = FastRequests(backend=MockBackend(handler), concurrency=4,
                              per_host_concurrency=2, max_retries=0)
        return await _all(client, urls())

    results = asyncio.run(main())
    assert sorted(r.index for r in results) == list(range(20))
    assert {r.index for r in results[:10]} == set(range(10))
