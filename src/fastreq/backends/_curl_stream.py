"""Streaming a libcurl body to ``RequestConfig.on_chunk``, sync or async.

A plain callback is called from libcurl's write callback, nothing else. When it returns an
awaitable, the write callback returns ``CURL_WRITEFUNC_PAUSE``: libcurl stops reading the
socket and keeps the chunk; once the awaitable is done the engine unpauses the transfer
(:meth:`~fastreq.backends._curl_engine.Engine.resume`). libcurl then delivers the kept data
again, possibly split differently or with more data appended, so the writer counts the bytes
already handed over (``done``) and passes on only what follows them: every byte reaches
``on_chunk`` exactly once, in order, and no more than one chunk is in flight (back-pressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from inspect import isawaitable
from typing import Any

import pycurl

from fastreq.backends._curl_handle import Easy

__all__ = ["chunk_writer"]

_PAUSE: int = pycurl.WRITEFUNC_PAUSE


def chunk_writer(h: Easy, on_chunk: Callable[[bytes], object]) -> Callable[[bytes], int | None]:
    """A WRITEFUNCTION handing each chunk to ``on_chunk``; an error aborts the transfer
    (kept in ``h.stream_error``, surfaced by the backend as a ``BackendError``)."""
    h.stream_error = None
    # leading bytes of libcurl's next buffer already given to on_chunk (0 on the sync path);
    # -1: the awaited callback failed, abort on the next write
    done = 0
    pending: list[asyncio.Future[Any]] = []  # the awaited callback (a strong reference)

    def write(data: bytes) -> int | None:
        nonlocal done
        chunk = data
        if done:
            if done < 0:
                return 0
            n = len(data)
            if n <= done:
                done -= n
                return None
            chunk = data[done:]
            done = 0
        try:
            result = on_chunk(chunk)
        except Exception as exc:
            h.stream_error = exc
            return 0  # fewer bytes than given: libcurl aborts with CURLE_WRITE_ERROR
        if result is None or not isawaitable(result):
            return None
        try:
            fut = asyncio.ensure_future(result)
        except Exception as exc:  # pragma: no cover - an awaitable asyncio cannot wrap
            h.stream_error = exc
            return 0
        done = len(data)
        pending.append(fut)
        fut.add_done_callback(_resumer(h.fut))
        return _PAUSE

    def _resumer(token: asyncio.Future[int] | None) -> Callable[[asyncio.Future[Any]], None]:
        def resume(fut: asyncio.Future[Any]) -> None:
            nonlocal done
            pending.clear()
            exc: BaseException | None
            exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
            if token is None or h.fut is not token or h.wake is None:
                return  # the request is over (cancelled, timed out, backend closed)
            if exc is not None:
                h.stream_error = exc
                done = -1
            h.wake(h, exc is not None)

        return resume

    return write

