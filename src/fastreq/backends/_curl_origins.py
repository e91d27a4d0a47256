"""HTTP/2 connection sharing for a cold burst: the :class:`Engine`'s origin gates.

libcurl multiplexes a new transfer onto an existing HTTP/2 connection, but transfers started
while the first connection to a host is still being set up each open their own (64
connections for a cold burst of 64). ``CURLOPT_PIPEWAIT`` avoids that but makes them wait for
the first *response* when the server turns out to speak HTTP/1.1 (a slow first request then
blocks every other one). Instead the first request to an https origin goes alone; the others
wait only until its connection is established (TLS done, ALPN known, signalled by
``CURLOPT_PREREQFUNCTION``) and are then added: libcurl multiplexes them onto that connection
if it is HTTP/2, or opens connections in parallel if it is HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import pycurl

from fastreq.backends._curl_handle import Easy

__all__ = ["OriginGates", "wake_all"]

_MAX_ORIGINS = 4096
_PREREQFUNC_OK: int = pycurl.PREREQFUNC_OK
_NEW: Any = object()


class OriginGates:
    """The origin-gating half of :class:`~fastreq.backends._curl_engine.Engine`."""

    loop: asyncio.AbstractEventLoop
    # https origin -> None (a connection to it was established: new transfers can see
    # whether it multiplexes) or the requests waiting for its first connection
    _origins: dict[str, list[asyncio.Future[None]] | None]

    def origin_ready(self, origin: str) -> bool:
        """A connection to ``origin`` was established before: no need to wait."""
        return self._origins.get(origin, _NEW) is None

    async def gate(self, origin: str) -> bool:
        """Wait until ``origin`` may be used; ``True``: this request is the one to connect."""
        origins = self._origins
        waiters = origins.get(origin, _NEW)
        if waiters is None:
            return False
        if waiters is _NEW:
            if len(origins) >= _MAX_ORIGINS:
                self._origins = origins = {k: v for k, v in origins.items() if v is not None}
            origins[origin] = []
            return True
        fut: asyncio.Future[None] = self.loop.create_future()
        waiters.append(fut)
        try:
            await fut
        except BaseException:
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            raise
        return False

    def pioneer(self, h: Easy, origin: str) -> None:
        """``h`` opens the first connection to ``origin``: tell the others when it is up."""
        h.key = None  # the callback must not stay on the pooled handle
        guard = h.guard if h.guarded else None  # keep a non-idempotent request's guard
        h.setopt(pycurl.PREREQFUNCTION,
                 functools.partial(self._origin_connected, origin, guard))

    def _origin_connected(
        self, origin: str, guard: Callable[..., int] | None, *conn_info: object
    ) -> int:
        # called by libcurl inside socket_action: only resolves futures
        waiters = self._origins.get(origin, _NEW)
        if waiters is not None and waiters is not _NEW:
            self._origins[origin] = None
            wake_all(waiters)
        return _PREREQFUNC_OK if guard is None else guard(*conn_info)

    def origin_done(self, origin: str) -> None:
        """The pioneer for ``origin`` finished; if it never connected, let the others try."""
        waiters = self._origins.get(origin)
        if waiters is not None:
            del self._origins[origin]
            wake_all(waiters)


def wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()
