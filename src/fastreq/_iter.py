"""Results as they complete, from synchronous code: :func:`fastreq_iter`.

The async core runs on its own event loop in a background thread; results cross over
through a small bounded hand-off (the loop waits when it is full, so a slow consumer slows
the fetching instead of filling memory). Closing the generator early (``break``, an
exception, garbage collection) cancels the run and waits for it to wind down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from fastreq._models import Result
from fastreq._sync import new_event_loop

__all__ = ["Handoff", "iterate_in_thread"]


class Handoff:
    """A bounded hand-off from an event loop thread (producer) to one plain thread."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None
        self._cancelled = False
        self._waiting = False  # the producer waits for space
        self._space: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    # -- producer side (on the loop) -----------------------------------------------------
    def bind(self) -> bool:
        """Register the running task; ``False`` if the consumer already left."""
        with self._cond:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._space = asyncio.Event()
            return not self._cancelled

    async def put(self, item: Any) -> None:
        assert self._space is not None
        while True:
            with self._cond:
                if len(self._items) < self._capacity:
                    self._items.append(item)
                    if len(self._items) == 1:
                        self._cond.notify()
                    return
                self._waiting = True
                self._space.clear()
            await self._space.wait()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            if self._finished:
                return
            self._finished = True
            self._error = error
            self._cond.notify()

    # -- consumer side -------------------------------------------------------------------
    def take(self) -> list[Any]:
        """Everything waiting (blocks until something is); ``[]`` at the end."""
        with self._cond:
            while not self._items and not self._finished:
                self._cond.wait()
            items = list(self._items)
            self._items.clear()
            wake, self._waiting = self._waiting, False
            error = self._error if not items else None
        if wake and self._loop is not None and self._space is not None:
            self._call(self._space.set)
        if error is not None:
            raise error
        return items

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            task = self._task
        if task is not None:
            self._call(task.cancel)

    def _call(self, callback: Callable[[], Any]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: the run is already over
            self._loop.call_soon_threadsafe(callback)


def iterate_in_thread(
    main: Callable[[Handoff], Coroutine[Any, Any, None]], capacity: int = 256
) -> Generator[Result, None, None]:
    """Run ``main(handoff)`` on a new loop in a thread; yield what it puts, in order."""
    handoff = Handoff(capacity)

    async def runner() -> None:
        if not handoff.bind():
            return
        try:
            await main(handoff)
        except asyncio.CancelledError:
            handoff.finish()
        except BaseException as exc:
            handoff.finish(exc)
        else:
            handoff.finish()

    def thread_main() -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(runner())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except BaseException as exc:  # pragma: no cover - the loop itself broke
            handoff.finish(exc)
        finally:
            loop.close()
            handoff.finish()

    thread = threading.Thread(target=thread_main, name="fastreq-iter", daemon=True)
    thread.start()
    try:
        while True:
            items = handoff.take()
            if not items:
                return
            yield from items
    finally:
        handoff.cancel()
        thread.join()
