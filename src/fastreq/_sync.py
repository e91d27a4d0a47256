"""Run fastreq's async core from synchronous code.

``run_sync`` works from a plain script (it starts an event loop, uvloop when installed) and
also when an event loop is already running in this thread (Jupyter, an async web app calling
sync code): then the coroutine runs on a fresh loop in a helper thread and this thread waits.

``LoopThread`` is a private event loop in a daemon thread: backends use it to offer a
synchronous ``request_sync()`` without the caller having any loop at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["LoopThread", "new_event_loop", "run_sync"]


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get("FASTREQ_LOOP", "").lower() == "asyncio" or sys.platform == "win32":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop when installed (``FASTREQ_LOOP=asyncio`` turns it off)."""
    factory = _uvloop_factory()
    return factory() if factory is not None else asyncio.new_event_loop()


def _run_in_new_loop(coro: Coroutine[Any, Any, T]) -> T:
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)  # pragma: no cover - Python 3.10


def run_sync(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coro_factory()`` to completion and return its result, from any sync context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_in_new_loop(coro_factory())
    # A loop is already running in this thread: asyncio.run() would refuse. Run the work on
    # its own loop in a helper thread; this (sync) call blocks, as the caller asked for.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fastreq-sync") as pool:
        return pool.submit(lambda: _run_in_new_loop(coro_factory())).result()


class LoopThread:
    """An event loop running forever in a daemon thread; submit coroutines from any thread."""

    def __init__(self, name: str = "fastreq-loop") -> None:
        self._loop = new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run() called from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
