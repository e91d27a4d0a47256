"""A curl lane's I/O thread seen from the event loop: start, retry sleeps, the end, closing.

Shared by the batch lane (:func:`fastreq._curl_lane._run_lane`) and the stream lane
(:mod:`fastreq._curl_lane_feed`). Retry sleeps happen on the loop through the client's
injected ``sleep``; the input then goes back to the thread (:meth:`LaneIO.resubmit`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastreq._curl_lane_done import Fail
from fastreq._curl_lane_io import LaneIO
from fastreq._models import ReturnType
from fastreq.backends.base import RequestConfig
from fastreq.utils.retry import RetryPolicy

if TYPE_CHECKING:
    from fastreq.client import FastRequests
    from fastreq.utils.headers import UserAgentPool

__all__ = ["LaneThread"]


class LaneThread:
    """One :class:`LaneIO` on its daemon thread; :meth:`close` stops and joins it.
    ``agents``: the plan's User-Agent pool (one pick per input), or ``None``: the template's."""

    def __init__(
        self,
        client: FastRequests,
        source: Iterator[tuple[int, Any]],
        template: RequestConfig,
        results: list[Any],
        *,
        concurrency: int,
        rtype: ReturnType,
        parse_func: Callable[[Any], Any] | None,
        fail: Fail,
        agents: UserAgentPool | None,
    ) -> None:
        from fastreq.backends.curl import CurlBackend

        self.loop = asyncio.get_running_loop()
        self.sleepers: set[asyncio.Task[None]] = set()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._sleep = client._sleep
        backend = client.backend
        assert isinstance(backend, CurlBackend)
        policy = RetryPolicy(client.retry)
        self.lane = LaneIO(
            source, template, results,
            concurrency=concurrency, rtype=rtype, parse_func=parse_func, policy=policy,
            statuses=policy.config.retry_statuses,
            agents=agents.agents if agents is not None else None,
            rnd=agents._random if agents is not None else float,
            jar=client._jar, max_host_connections=backend._max_host_connections,
            multiplex=backend._http2_enabled, pipewait=backend._h2 and template.http2,
            fail=fail, retry=self._retry, apply=backend._apply_all, finish=backend._finish,
        )
        self._thread = threading.Thread(target=self._main, name="fastreq-curl-lane",
                                        daemon=True)

    def deliver(self, wake: asyncio.Event) -> collections.deque[tuple[Any, ...]]:
        """Feed mode: the lane's outcomes go to the deque returned; the thread's signals
        (:meth:`LaneIO.signal`) and its end set ``wake``."""
        lane, loop = self.lane, self.loop
        out: collections.deque[tuple[Any, ...]] = collections.deque()
        lane.out = out

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        lane.notify = notify
        self.done.add_done_callback(lambda _: wake.set())
        return out

    # -- retries: sleep on the loop, then back to the thread ----------------------------------
    def _retry(self, index: int, job: Any, attempts: int, delay: float) -> None:
        self.loop.call_soon_threadsafe(self._start_sleep, index, job, attempts, delay)

    def _start_sleep(self, index: int, job: Any, attempts: int, delay: float) -> None:
        task = self.loop.create_task(self._sleep_then_resubmit(index, job, attempts, delay))
        self.sleepers.add(task)
        task.add_done_callback(self.sleepers.discard)

    async def _sleep_then_resubmit(self, index: int, job: Any, attempts: int, delay: float
                                   ) -> None:
        await self._sleep(delay)
        self.lane.resubmit(index, job, attempts)

    # -- the thread ------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self.lane.run()
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                self.loop.call_soon_threadsafe(self._finished)

    def _finished(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def start(self) -> None:
        self._thread.start()

    async def close(self) -> None:
        """Stop the thread (its in-flight transfers dropped) and join it; cancel the sleeps."""
        self.lane.stop()
        if self._thread.ident is not None:  # started
            self._thread.join()
        for task in list(self.sleepers):
            task.cancel()
        if self.sleepers:
            await asyncio.gather(*self.sleepers, return_exceptions=True)
