"""Line iteration over a streamed body: NDJSON, SSE-style and other line feeds.

The body is read chunk by chunk (``RequestConfig(stream=True, on_chunk=...)``) and cut into
lines as it arrives, so a feed that never ends, or one larger than memory, can be consumed
line by line. One request, sent once: a feed is not retried midway (lines would repeat).

Example::

    async with FastRequests() as client:
        async for line in client.aiter_lines("https://example.com/events.ndjson"):
            event = json.loads(line)

    for line in fastreq.iter_lines("https://example.com/export.ndjson", timeout=None):
        ...
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from fastreq._iter import Handoff, iterate_in_thread
from fastreq._plan import Plan
from fastreq.exceptions import ConfigurationError

if TYPE_CHECKING:
    from fastreq.client import FastRequests

__all__ = ["LineSplitter", "iter_lines", "stream_lines"]

_END = object()
_LINE_OPTIONS = frozenset(
    {"method", "params", "data", "json", "headers", "cookies", "timeout", "proxy"}
)
# Only CR, LF and CRLF end a line: str.splitlines() would also cut at U+2028 and friends,
# which JSON allows unescaped inside strings.
_EOL = re.compile("\r\n|\r|\n")


class LineSplitter:
    """Turns byte chunks into text lines (``\\n``, ``\\r\\n`` or ``\\r`` endings, not kept).

    Multi-byte characters split across chunks are decoded correctly.
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(chunk)
        held = ""
        if text.endswith("\r"):  # maybe the first half of a \r\n split across chunks
            text, held = text[:-1], "\r"
        lines = _EOL.split(text)
        self._pending = lines.pop() + held
        return lines

    def close(self) -> list[str]:
        rest = (self._pending + self._decoder.decode(b"", final=True)).rstrip("\r")
        self._pending = ""
        return [rest] if rest else []


async def stream_lines(
    client: FastRequests, url: str, request_options: dict[str, Any]
) -> AsyncGenerator[str, None]:
    """The lines of ``url``'s body as they arrive, sent with the client's settings."""
    unknown = set(request_options) - _LINE_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) for line iteration: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_LINE_OPTIONS))}"
        )
    plan = Plan(url, client._defaults, **request_options,
                timeout_given="timeout" in request_options)
    config = plan.config_factory()(url, 0)
    chunks: asyncio.Queue[Any] = asyncio.Queue()
    config.stream = True
    config.on_chunk = chunks.put_nowait

    async def fetch() -> None:
        try:
            await client.backend.request(config)
        finally:
            chunks.put_nowait(_END)

    splitter = LineSplitter()
    async with client._session():
        task = asyncio.ensure_future(fetch())
        try:
            while True:
                chunk = await chunks.get()
                if chunk is _END:
                    break
                for line in splitter.feed(chunk):
                    yield line
            await task  # raises the request's error, if it failed
            for line in splitter.close():
                yield line
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def iter_lines(url: str, **options: Any) -> Generator[str, None, None]:
    """Sync :func:`stream_lines`: the lines of one URL's body as they arrive.

    ``options`` are client options and request options, as for :func:`~fastreq.fastreq`.
    Breaking out of the loop closes the connection.
    """
    from fastreq._api import _split
    from fastreq.client import FastRequests

    client_options, request_options = _split(options)  # type: ignore[arg-type]

    async def main(handoff: Handoff) -> None:
        async with FastRequests(**client_options) as client:
            lines = stream_lines(client, url, request_options)
            try:
                async for line in lines:
                    await handoff.put(line)
            finally:
                await lines.aclose()

    yield from iterate_in_thread(main)  # type: ignore[misc]
