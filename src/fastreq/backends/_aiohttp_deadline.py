"""Long total timeouts of the aiohttp backend, enforced with one timer per event loop.

aiohttp arms a timer per request for its ``total`` timeout (a ``TimerHandle``, a callback
list and a ``TimerContext``: ~5 µs a request). For totals of :data:`MIN_TOTAL` seconds or
more it rounds the firing time up to the whole second. :class:`Deadlines` keeps those
requests' firing times (the same rounding, :data:`GRAIN`) and a single timer for the
earliest one; a request still running at its firing time has its task cancelled, and the
backend turns that cancellation into :class:`~fastreq.exceptions.RequestTimeoutError`, as
aiohttp's timer would have done. Shorter totals stay with aiohttp (exact to the millisecond).
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

__all__ = ["GRAIN", "MIN_TOTAL", "Deadlines"]

#: totals from this many seconds up are kept here (aiohttp's ``ceil_threshold``)
MIN_TOTAL = 5.0
#: firing times are rounded up to a multiple of this (aiohttp: whole seconds)
GRAIN = 1.0

_Entry = tuple["asyncio.Task[Any]", float]


class Deadlines:
    """The long total timeouts of one event loop's requests (see the module doc)."""

    __slots__ = ("_entries", "_expired", "_handle", "_loop", "_next", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: dict[int, _Entry] = {}
        #: requests whose task was cancelled for their timeout -> the task's cancelling()
        #: count before that (3.11+; so that a cancellation from outside still wins)
        self._expired: dict[int, int] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._when = math.inf
        self._next = 0

    def add(self, total: float) -> int | None:
        """Start ``total`` seconds for the current task's request; its token (``None``: no
        task to cancel, so the caller leaves this total to aiohttp)."""
        task = asyncio.current_task(self._loop)
        if task is None:
            return None
        grain = GRAIN
        fire = math.ceil((self._loop.time() + total) / grain) * grain
        self._next = token = self._next + 1
        self._entries[token] = (task, fire)
        if fire < self._when:
            if self._handle is not None:
                self._handle.cancel()
            self._when = fire
            self._handle = self._loop.call_at(fire, self._fire)
        return token

    def discard(self, token: int) -> None:
        """The request is over (whatever its outcome)."""
        del self._entries[token]
        if self._expired:
            self._expired.pop(token, None)

    def timed_out(self, token: int) -> bool:
        """Whether the cancellation the request got is its timeout (then undone: the request
        fails with a timeout error instead); ``False`` when it also came from outside."""
        count = self._expired.pop(token, None)
        if count is None:
            return False
        entry = self._entries.get(token)
        if sys.version_info >= (3, 11) and entry is not None:
            return entry[0].uncancel() <= count
        return True

    def close(self) -> None:
        """Stop the timer (the loop is closing or the session is dropped)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._when = math.inf

    def _fire(self) -> None:
        now = self._when
        self._handle = None
        self._when = math.inf
        earliest = math.inf
        for token, (task, fire) in list(self._entries.items()):
            if fire <= now:
                if token not in self._expired and not task.done():
                    count = 0
                    if sys.version_info >= (3, 11):
                        count = task.cancelling()
                    self._expired[token] = count
                    task.cancel()
            elif fire < earliest:
                earliest = fire
        if earliest < math.inf:
            self._when = earliest
            self._handle = self._loop.call_at(earliest, self._fire)
