"""Line iteration over a streamed body (NDJSON / SSE-style feeds), over every backend."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

import fastreq
from fastreq import ConfigurationError, ConnectError, FastRequests
from fastreq._lines import LineSplitter

from ._server import TestServer


def test_splitter_handles_every_line_ending_and_split_characters() -> None:
    splitter = LineSplitter()
    chunks = [b"a\r", b"\nb\n\nc\xe2\x80\xa8", b"d\xc3", b"\xa9\re", b"f"]
    lines = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.close()
    # \u2028 is not a line end (JSON may hold it raw); an empty line is kept (SSE needs it)
    assert lines == ["a", "b", "", "c\u2028dé", "ef"]


def test_splitter_without_final_newline_and_empty_body() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x\ny") == ["x"]
    assert splitter.close() == ["y"]
    assert LineSplitter().close() == []


def test_aiter_lines_streams_ndjson(server: TestServer, backend_name: str) -> None:
    async def main() -> list[str]:
        async with FastRequests(backend=backend_name) as client:
            return [line async for line in client.aiter_lines(server.url("/ndjson/50"))]

    lines = asyncio.run(main())
    assert [json.loads(line) for line in lines] == [{"i": i} for i in range(50)]


def test_lines_arrive_before_the_body_ends(server: TestServer, backend_name: str) -> None:
    """A slow feed (one line per 50 ms, 40 lines): the first line reaches the caller while
    the server has sent only a few, and stopping there ends the request."""
    seen_when_first: list[int] = []

    async def main() -> None:
        async with FastRequests(backend=backend_name, timeout=30) as client:
            lines = client.aiter_lines(server.url("/feed/40?interval=0.05"))
            async with contextlib.aclosing(lines):
                async for line in lines:
                    assert json.loads(line) == {"i": 0}
                    seen_when_first.append(server.feed_sent)
                    break

    asyncio.run(main())
    assert seen_when_first and seen_when_first[0] < 40


def test_sync_iter_lines(server: TestServer, backend_name: str) -> None:
    got = []
    for line in fastreq.iter_lines(server.url("/ndjson/20"), backend=backend_name):
        got.append(json.loads(line)["i"])
        if len(got) == 5:
            break  # leaving early closes the request
    assert got == [0, 1, 2, 3, 4]
    assert list(fastreq.iter_lines(server.url("/text"), backend=backend_name)) == ["hello"]


def test_errors_and_bad_options(backend_name: str, refused_url: str) -> None:
    with pytest.raises(ConnectError):
        list(fastreq.iter_lines(refused_url, backend=backend_name))
    with pytest.raises(ConfigurationError, match="keys"):
        list(fastreq.iter_lines(refused_url, backend=backend_name, keys=["a"]))
