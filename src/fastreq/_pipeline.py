"""The bounded pipeline: a fixed pool of workers pulls inputs lazily from one iterator.

Nothing is allocated per input up front: no task per URL, no list of coroutines. ``workers``
coroutines each take the next input, handle it to completion and take the next, so at most
``workers`` inputs are in flight and a generator of a billion URLs is read as it is consumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

__all__ = ["run_pool"]

T = TypeVar("T")


async def run_pool(
    source: Iterator[T], handle: Callable[[T], Awaitable[None]], workers: int
) -> None:
    """Run ``handle`` on every item of ``source`` with at most ``workers`` at a time.

    ``handle`` is expected to record its own outcome and not raise; if it (or ``source``)
    does raise, the other workers are cancelled and the exception propagates.
    """

    async def worker() -> None:
        for item in source:  # one shared iterator: next() never awaits, so no lock is needed
            await handle(item)

    if workers <= 1:
        await worker()
        return
    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
