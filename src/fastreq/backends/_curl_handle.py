"""A pooled libcurl easy handle with the per-transfer state the engine and backend share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pycurl

__all__ = ["Easy"]


class Easy:
    """A pooled libcurl easy handle plus the per-transfer state the engine and backend share.

    Not a ``pycurl.Curl`` subclass on purpose: attribute access on pycurl objects goes
    through pycurl's own ``getattr`` (about 4x slower than a slot). ``chunks`` and ``hdrs``
    are filled by libcurl through their bound ``append`` methods (C calls, no Python frame per
    chunk). ``key`` describes the options currently applied (``None``: ``reset()`` first).
    """

    __slots__ = (
        "chunks", "cookies", "curl", "errmsg", "fut", "getinfo", "hdrs", "headers", "key",
        "setopt", "stream_error", "ua",
    )

    def __init__(self) -> None:
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

    def reset(self) -> None:
        self.curl.reset()

    def close(self) -> None:
        self.curl.close()
