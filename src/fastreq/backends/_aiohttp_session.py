"""The aiohttp backend's session parts: its connector, request class and timeout plans.

Two per-request costs of ``session._request()`` are avoided here without changing what is
sent or how long a request may take:

- headers: aiohttp merges the ``headers=`` argument into the session defaults (two
  ``CIMultiDict`` copies per request) before the request class copies them once more. A
  plain dict whose names differ case-insensitively (and that holds no Authorization, which
  aiohttp checks against URL credentials on the merged copy) is handed straight to the
  request class instead, through :data:`DIRECT_HEADERS`: the same headers, in the same order.
- total timeouts of :data:`~fastreq.backends._aiohttp_deadline.MIN_TOTAL` seconds or more:
  aiohttp would arm one timer per request; :func:`timeout_plan` leaves them out of aiohttp's
  ``ClientTimeout`` so that the backend's :class:`~fastreq.backends._aiohttp_deadline.Deadlines`
  enforces them (same firing time: aiohttp rounds those up to the second too).
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp import hdrs

from fastreq.backends import _aiohttp_deadline as _deadline
from fastreq.timeouts import Timeout, TimeoutLike

__all__ = [
    "DIRECT_HEADERS", "FRESH", "NO_TIMEOUT", "PoolConnector", "direct_headers",
    "request_class", "timeout_plan",
]

NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)

#: set by PoolConnector in the request's task: its connection is a new one (not one from
#: the pool: only a reused keep-alive connection may have gone stale)
FRESH: ContextVar[bool] = ContextVar("fastreq_aiohttp_fresh", default=False)
#: the headers of the request the task is about to build (``None``: aiohttp's own merge)
DIRECT_HEADERS: ContextVar[dict[str, str] | None] = ContextVar(
    "fastreq_aiohttp_headers", default=None
)


class PoolConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that tells (through ``FRESH``) whether the request's connection
    was opened for it; a connection not opened for it came from the pool. (Hooked where
    connections are opened, not where the pool hands them out: no extra coroutine on the
    path of every pooled request.)"""

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        FRESH.set(True)
        return await super()._create_connection(*args, **kwargs)


def direct_headers(headers: dict[str, str]) -> dict[str, str] | None:
    """``headers`` when the request class may take them as they are (see the module doc):
    aiohttp's merge would keep only the last of two names equal but for case."""
    if len(headers) == 1:
        for name in headers:
            return None if name.lower() == "authorization" else headers
    names = {name.lower() for name in headers}
    if len(names) != len(headers) or "authorization" in names:
        return None
    return headers


def request_class(supported: tuple[str, ...]) -> type[aiohttp.ClientRequest]:
    """aiohttp's request class taking :data:`DIRECT_HEADERS`, minus any Accept-Encoding
    coding ``supported`` lacks (its default offers zstd when backports.zstd is installed,
    which _decode does not use)."""
    defaults = aiohttp.ClientRequest.DEFAULT_HEADERS
    offered = defaults.get(hdrs.ACCEPT_ENCODING, "")
    codings = [c.strip() for c in offered.split(",") if c.strip()]
    kept = [c for c in codings if c.lower() in supported]
    fallback = DIRECT_HEADERS.get

    class _Request(aiohttp.ClientRequest):
        if kept != codings:
            DEFAULT_HEADERS = {**defaults, hdrs.ACCEPT_ENCODING: ", ".join(kept) or "identity"}

        def update_headers(self, headers: Any) -> None:
            direct = fallback()
            # set: the session passed its (empty) defaults; these are the request's own
            super().update_headers(headers if direct is None else direct)

    return _Request


@lru_cache(maxsize=64, typed=True)  # typed: True must not hit the entry of 1
def timeout_plan(value: TimeoutLike) -> tuple[aiohttp.ClientTimeout, aiohttp.ClientTimeout | None]:
    """aiohttp's limits for a raw ``RequestConfig.timeout`` (cached: no Timeout per
    request): ``(all limits, the same without the total)``; the second is ``None`` unless the
    total is long enough for :class:`~fastreq.backends._aiohttp_deadline.Deadlines`."""
    timeout = Timeout.coerce(value)
    if timeout is None:
        return NO_TIMEOUT, None
    # aiohttp's ``connect`` covers pool wait + DNS + TCP + TLS + proxy handshake. The pool
    # is unlimited, so there is never a wait for a free connection and ``pool`` is moot.
    full = aiohttp.ClientTimeout(
        total=timeout.total, connect=timeout.connect, sock_read=timeout.read, sock_connect=None
    )
    if timeout.total is None or timeout.total < _deadline.MIN_TOTAL:
        return full, None
    return full, aiohttp.ClientTimeout(
        total=None, connect=timeout.connect, sock_read=timeout.read, sock_connect=None
    )
