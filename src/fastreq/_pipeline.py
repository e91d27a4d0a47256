"""The bounded pipeline: a fixed pool of workers pulls inputs lazily from one source.

Nothing is allocated per input up front: no task per URL, no list of coroutines. Each of the
``workers`` coroutines takes the next input, handles it to completion and takes the next, so
at most ``workers`` inputs are in flight and a generator of a billion URLs is read as it is
consumed (:func:`fastreq._batch.run_inputs` builds its workers on these two).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run_pool_async", "run_workers"]

T = TypeVar("T")


async def run_workers(workers: list[Coroutine[Any, Any, None]]) -> None:
    """Run the pool's workers to the end (each records its inputs' outcomes, never raises);
    if one does raise, the others are cancelled and the exception propagates."""
    if len(workers) == 1:
        await workers[0]
        return
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_pool_async(
    source: AsyncIterator[T], handle: Callable[[T], Awaitable[None]], workers: int
) -> None:
    """Run ``handle`` on every item of an async iterator, ``workers`` at a time: the workers
    take turns awaiting the next item."""
    turn = asyncio.Lock()

    async def worker() -> None:
        while True:
            async with turn:
                try:
                    item = await source.__anext__()
                except StopAsyncIteration:
                    return
            await handle(item)

    await run_workers([worker() for _ in range(max(1, workers))])
