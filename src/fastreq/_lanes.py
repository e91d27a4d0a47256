"""Per-host lanes: the pipeline used when hosts have their own limits.

A dispatcher reads inputs lazily, from an iterator or an async iterator alike, and drops
each into its host's queue: it keeps reading while earlier inputs are in flight (no chunks,
so a slow request holds back nothing but its own lane). Each host gets at most
``per-host concurrency`` lane tasks, created on demand and ended when the host's queue
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastreq.exceptions import ConfigurationError
from fastreq.utils.rate_limiter import AsyncRateLimiter, HostLimit, RateLimitConfig

__all__ = ["HostGate", "HostGates", "run_lanes"]


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


class HostGates:
    """A client's per-host gates, made on first use and kept, so limits hold across calls.

    ``default`` applies to every host; ``overrides`` (host name → HostLimit) to named ones.
    """

    def __init__(
        self,
        default: HostLimit,
        overrides: Mapping[str, HostLimit] | None,
        concurrency: int,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self._default = default
        self._overrides = {host.lower(): limit for host, limit in (overrides or {}).items()}
        for host, limit in self._overrides.items():
            if not isinstance(limit, HostLimit):
                raise ConfigurationError(f"host_limits[{host!r}] must be a HostLimit")
        self._concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._gates: dict[str, HostGate] = {}
        #: whether any per-host limit is set (otherwise the plain worker pool runs)
        self.active = bool(self._overrides) or (
            default.concurrency is not None or default.rate_limit is not None
        )

    def __call__(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            limit = self._overrides.get(host, self._default)
            limiter = None
            if limit.rate_limit is not None:
                limiter = AsyncRateLimiter(
                    RateLimitConfig(limit.rate_limit, limit.burst),
                    clock=self._clock, sleep=self._sleep,
                )
            gate = self._gates[host] = HostGate(limit.concurrency or self._concurrency, limiter)
        return gate


@dataclass
class _Lane:
    gate: HostGate
    queue: deque[Any] = field(default_factory=deque)
    tasks: int = 0


async def run_lanes(
    source: Iterator[Any] | AsyncIterator[Any],
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

    def dispatch(item: Any) -> None:
        nonlocal buffered
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

    try:
        if isinstance(source, AsyncIterator):  # awaited by this one task: no lock needed
            async for item in source:
                if failure:
                    break
                dispatch(item)
                while buffered >= buffer_cap and not failure:
                    space.clear()
                    await space.wait()
        else:
            for item in source:
                if failure:
                    break
                dispatch(item)
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
