"""Per-host lanes: the pipeline used when hosts have their own limits.

A dispatcher reads inputs lazily and drops each into its host's queue; each host gets at
most ``per-host concurrency`` lane tasks, created on demand and ended when the host's queue
runs dry. A lane waits until its host's rate token is free *before* it takes one of the
global ``concurrency`` slots, so a strict or slow host only ever occupies its own lanes and
the other hosts keep going. The token itself is taken only once the slot is held, at the
moment the request starts: a token booked earlier could slip while waiting for a slot, and
several slipped tokens would then start together, over the host's rate. One lane per host
at a time waits for the token (FIFO, one timer per host). Inputs buffered in host queues are
capped (backpressure on the reader), so memory stays bounded whatever the input size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastreq.utils.rate_limiter import AsyncRateLimiter

__all__ = ["HostGate", "run_lanes"]


@dataclass
class HostGate:
    """One host's limits: lanes (concurrency) and an optional rate limiter."""

    concurrency: int
    limiter: AsyncRateLimiter | None = None
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # the lane waiting for a token

    async def start(self, slots: asyncio.Semaphore) -> None:
        """Return holding one of ``slots`` and, if rate-limited, a token taken just now."""
        limiter = self.limiter
        if limiter is None:
            await slots.acquire()
            return
        async with self.turn:
            while True:
                await limiter.wait_until_free()
                await slots.acquire()
                if limiter.try_acquire():
                    return
                slots.release()  # a retry of this host booked the token meanwhile


@dataclass
class _Lane:
    gate: HostGate
    queue: deque[Any] = field(default_factory=deque)
    tasks: int = 0


async def run_lanes(
    source: Iterator[Any],
    host_of: Callable[[Any], str],
    gate_for: Callable[[str], HostGate],
    handle: Callable[[Any, str], Awaitable[None]],
    concurrency: int,
    buffer_cap: int,
) -> None:
    """Run ``handle(item, host)`` for every item; limits as described in the module doc."""
    slots = asyncio.Semaphore(concurrency)
    lanes: dict[str, _Lane] = {}
    tasks: set[asyncio.Task[None]] = set()
    buffered = 0
    space = asyncio.Event()
    failure: list[BaseException] = []

    async def lane_main(host: str, lane: _Lane) -> None:
        nonlocal buffered
        try:
            while lane.queue:
                item = lane.queue.popleft()
                buffered -= 1
                space.set()
                await lane.gate.start(slots)
                try:
                    await handle(item, host)
                finally:
                    slots.release()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                failure.append(exc)
            raise
        finally:
            lane.tasks -= 1
            if lane.tasks == 0 and not lane.queue and lanes.get(host) is lane:
                del lanes[host]

    def on_done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        space.set()

    try:
        for item in source:
            if failure:
                break
            host = host_of(item)
            lane = lanes.get(host)
            if lane is None:
                lane = lanes[host] = _Lane(gate_for(host))
            lane.queue.append(item)
            buffered += 1
            if lane.tasks < lane.gate.concurrency:
                lane.tasks += 1
                task = asyncio.ensure_future(lane_main(host, lane))
                tasks.add(task)
                task.add_done_callback(on_done)
            while buffered >= buffer_cap and not failure:
                space.clear()
                await space.wait()
        while tasks and not failure:
            await asyncio.wait(set(tasks))
        if failure:
            raise failure[0]
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
