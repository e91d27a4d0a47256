"""Fake time for tests: nothing here sleeps for real.

- :class:`FakeClock`: ``sleep(s)`` just moves the clock forward by ``s`` (one waiter at a time);
- :class:`VirtualClock`: many concurrent sleepers; :meth:`VirtualClock.run` drives a coroutine
  and, whenever every task is blocked, jumps the clock to the next sleeper's deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class FakeClock:
    """A clock that only moves when somebody sleeps (or a test sets ``now``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


class VirtualClock:
    """Virtual time for many concurrent sleepers; use ``await clock.run(coro)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = start
        self.now = start
        self.sleeps: list[float] = []
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + seconds, next(self._seq), future))
        await future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro``; when nothing is runnable, advance to the next deadline."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(coro)
        while not task.done():
            for _ in range(10_000):  # let every runnable callback run first
                await asyncio.sleep(0)
                if task.done() or not loop._ready:  # type: ignore[attr-defined]
                    break
            if task.done():
                break
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                await asyncio.sleep(0.001)  # blocked on something real (I/O)
                continue
            deadline = self._heap[0][0]
            self.now = max(self.now, deadline)
            while self._heap and self._heap[0][0] <= self.now:
                future = heapq.heappop(self._heap)[2]
                if not future.done():
                    future.set_result(None)
        return task.result()
