"""A pooled libcurl easy handle with the per-transfer state the engine and backend share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pycurl

__all__ = ["Easy", "too_large"]

_PREREQFUNC_OK: int = pycurl.PREREQFUNC_OK
_PREREQFUNC_ABORT: int = pycurl.PREREQFUNC_ABORT
_FILESIZE_EXCEEDED: int = pycurl.E_FILESIZE_EXCEEDED


class Easy:
    """A pooled libcurl easy handle plus the per-transfer state the engine and backend share.

    Not a ``pycurl.Curl`` subclass on purpose: attribute access on pycurl objects goes
    through pycurl's own ``getattr`` (about 4x slower than a slot). ``chunks`` and ``hdrs``
    are filled by libcurl through their bound ``append`` methods (C calls, no Python frame per
    chunk). ``key`` describes the options currently applied (``None``: ``reset()`` first).

    ``wake`` is the owning engine's ``resume(handle, failed)`` (a transfer paused for an
    async ``on_chunk`` goes on, or is failed), ``cap`` the ``max_body_size``
    applied as ``CURLOPT_MAXFILESIZE_LARGE`` (``None``: none), ``guarded`` whether a
    resend guard (non-idempotent method, see ``_curl_options``) is installed.
    """

    __slots__ = (
        "cap", "chunks", "cookies", "curl", "errmsg", "fut", "getinfo", "guarded", "hdrs",
        "headers", "key", "sent", "setopt", "stream_error", "ua", "wake",
    )

    def __init__(self, wake: Callable[[Easy, bool], None] | None = None) -> None:
        curl = pycurl.Curl()
        self.curl: Any = curl
        self.setopt: Callable[[int, Any], None] = curl.setopt
        self.getinfo: Callable[[int], Any] = curl.getinfo
        self.chunks: list[bytes] = []
        self.hdrs: list[bytes] = []
        self.fut: asyncio.Future[int] | None = None
        self.key: tuple[Any, ...] | None = None
        self.headers: dict[str, str] = {}  # sent headers but User-Agent (and Cookie)
        self.ua = ""
        self.cookies: dict[str, str] | None = None
        self.errmsg = ""
        self.stream_error: BaseException | None = None
        self.wake = wake
        self.cap: int | None = None
        self.guarded = False
        self.sent = -1

    def guard(self, *_conn_info: object) -> int:
        """``CURLOPT_PREREQFUNCTION`` of a non-idempotent request: a request about to be
        sent again with no response header received since the last send (libcurl resending
        it on a fresh connection after a reused one died) is aborted instead. ``sent``: the
        number of header lines received before the last send (-1: not sent yet)."""
        received = len(self.hdrs)
        if received == self.sent:
            return _PREREQFUNC_ABORT
        self.sent = received
        return _PREREQFUNC_OK

    def result(self, code: int, message: str = "") -> int:
        """The result code of this finished transfer, with the exact ``max_body_size``
        check (``CURLOPT_MAXFILESIZE_LARGE`` is given some slack over ``cap``); a failure
        leaves its message in ``errmsg``."""
        cap = self.cap
        if code:
            self.errmsg = too_large(cap) if code == _FILESIZE_EXCEEDED and cap is not None \
                else message
        elif cap is not None:
            chunks = self.chunks
            if chunks and (len(chunks) > 1 or len(chunks[0]) > cap) and sum(
                map(len, chunks)
            ) > cap:
                self.errmsg = too_large(cap)
                return _FILESIZE_EXCEEDED
        return code

    def reset(self) -> None:
        self.curl.reset()

    def close(self) -> None:
        self.curl.close()


def too_large(cap: int) -> str:
    """The message of a body over ``max_body_size``."""
    return f"response body exceeds max_body_size ({cap} bytes after decompression)"
