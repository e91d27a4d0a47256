"""Results as they complete: client.stream(), fastreq_stream(), fastreq_iter(), large bodies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import fastreq
from fastreq import (
    ConfigurationError,
    FastRequests,
    NormalizedResponse,
    Result,
    RetryConfig,
    RetryExhaustedError,
    fastreq_iter,
    fastreq_stream,
)
from fastreq.backends.base import Backend, RequestConfig

from ._server import TestServer

FAST_RETRY = RetryConfig(max_retries=3, backoff_base=0.001, max_delay=0.01)


class Instant(Backend):
    """Answers at once from memory: the scheduler's own cost, no I/O."""

    @property
    def name(self) -> str:
        return "instant"

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        return NormalizedResponse(200, [("content-type", "application/json")], b'{"ok": 1}',
                                  url=config.url)

    async def close(self) -> None:
        pass


def _check_complete(results: list[Result], n: int) -> None:
    assert len(results) == n
    assert sorted(r.index for r in results) == list(range(n))


def test_stream_yields_every_input_once(server: TestServer, backend_name: str) -> None:
    urls = [server.url(f"/json/{i}") for i in range(40)]

    async def main() -> list[Result]:
        async with FastRequests(backend=backend_name, concurrency=8) as client:
            return [r async for r in client.stream(urls)]

    results = asyncio.run(main())
    _check_complete(results, 40)
    for r in results:
        assert r.ok and r.status == 200 and r.value == {"n": r.index}
        assert r.url == urls[r.index] and r.attempts == 1 and r.elapsed > 0
    assert len(server.hits_for("/json/")) == 40


def test_completion_order_fast_before_slow(server: TestServer) -> None:
    urls = [server.url("/slow?delay=0.4")] + [server.url(f"/json/{i}") for i in range(10)]
    results = list(fastreq_iter(urls, backend="aiohttp", concurrency=4))
    _check_complete(results, 11)
    assert results[-1].index == 0  # the slow one, first in, comes out last
    assert results[-1].value == {"slept": 0.4}


def test_failures_are_results_with_attempts(server: TestServer, refused_url: str) -> None:
    urls = [server.url("/flaky/s1/2"), server.url("/status/404"), refused_url,
            server.url("/status/503")]
    by_index = {r.index: r for r in fastreq_iter(urls, backend="aiohttp", retry=FAST_RETRY)}
    assert by_index[0].ok and by_index[0].attempts == 3 and by_index[0].status == 200
    assert by_index[1].ok and by_index[1].status == 404  # a status is data, not an error
    assert not by_index[2].ok and by_index[2].status is None and by_index[2].value is None
    assert isinstance(by_index[3].error, RetryExhaustedError)
    assert by_index[3].status == 503 and by_index[3].attempts == 4


def test_keys_and_request_keys_are_carried(server: TestServer) -> None:
    urls = [server.url(f"/json/{i}") for i in range(3)]
    out = {r.key: r.value for r in fastreq_iter(urls, backend="aiohttp", keys=["a", "b", "c"])}
    assert out == {"a": {"n": 0}, "b": {"n": 1}, "c": {"n": 2}}
    reqs = (fastreq.Request(u, key=f"k{i}") for i, u in enumerate(urls))  # lazy: keys per item
    assert {r.key for r in fastreq_iter(reqs, backend="aiohttp")} == {"k0", "k1", "k2"}


def test_async_iterator_input(server: TestServer) -> None:
    async def urls() -> AsyncIterator[str]:
        for i in range(30):
            await asyncio.sleep(0)
            yield server.url(f"/json/{i}")

    async def main() -> list[Result]:
        return [r async for r in fastreq_stream(urls(), backend="aiohttp", concurrency=5)]

    results = asyncio.run(main())
    _check_complete(results, 30)
    assert all(r.value == {"n": r.index} for r in results)
    # request() takes one too, and with per-host limits (lanes) as well
    out = fastreq.fastreq(urls(), backend="aiohttp", per_host_concurrency=2)
    assert out == [{"n": i} for i in range(30)]


def test_generator_input_of_unknown_length() -> None:
    results = list(fastreq_iter((f"http://h/{i}" for i in range(500)), backend=Instant()))
    _check_complete(results, 500)


def test_early_break_cancels_cleanly(server: TestServer) -> None:
    before = threading.active_count()
    urls = [server.url("/json/0")] + [server.url("/slow?delay=30")] * 20
    it = fastreq_iter(urls, backend="aiohttp", concurrency=5)
    first = next(it)
    assert first.index == 0
    it.close()  # must not wait for the 30 s requests
    assert threading.active_count() == before
    # and a break out of an endless generator
    endless = (f"http://h/{i}" for i in range(10**9))
    for n, _ in enumerate(fastreq_iter(endless, backend=Instant())):
        if n == 100:
            break
    gc.collect()
    assert threading.active_count() == before


def test_async_early_close_cancels(server: TestServer) -> None:
    async def main() -> int:
        urls = [server.url("/json/0")] + [server.url("/slow?delay=30")] * 5
        async with FastRequests(backend="aiohttp") as client, contextlib.aclosing(
            client.stream(urls)
        ) as results:
            async for r in results:
                return r.index
        return -1

    assert asyncio.run(asyncio.wait_for(main(), 10)) == 0


def test_errors_of_the_run_reach_the_consumer() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        fastreq_iter(["http://h/"], no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(fastreq.ValidationError):  # a bad list is checked before sending
        list(fastreq_iter(["http://h/", "not a url"], backend=Instant()))


def _peak(n: int) -> int:
    tracemalloc.start()
    try:
        for _ in fastreq_iter((f"http://h/{i}" for i in range(n)), backend=Instant(),
                              concurrency=32):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_n() -> None:
    _peak(200)  # warm-up: first-use imports and caches are not per-input memory
    small, large = _peak(2_000), _peak(20_000)
    # 10x the inputs; a list of results would cost ~10x. Allow noise, not growth.
    assert large < small * 1.5 + 100_000, (small, large)


# -- large bodies ---------------------------------------------------------------------------
def test_download_dir_writes_each_body(server: TestServer, backend_name: str,
                                       tmp_path: Path) -> None:
    sizes = [0, 10, 300_000, 1_000_000]
    urls = [server.url(f"/bytes/{n}") for n in sizes]
    results = list(fastreq_iter(urls, backend=backend_name, download_dir=tmp_path / "out"))
    _check_complete(results, 4)
    for r in results:
        assert r.ok, r.error
        path = Path(r.value)
        assert path == tmp_path / "out" / str(r.index)
        assert path.read_bytes() == bytes(i % 256 for i in range(sizes[r.index]))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0", "1", "2", "3"]


def test_download_dir_names_by_key_and_drops_failures(server: TestServer, tmp_path: Path,
                                                      refused_url: str) -> None:
    out = fastreq.fastreq([server.url("/bytes/5"), refused_url], backend="aiohttp",
                          keys=["a/b", "x"], download_dir=tmp_path, return_none_on_failure=True,
                          max_retries=0, verbose=False)
    assert out == {"a/b": str(tmp_path / "a_b"), "x": None}
    assert [p.name for p in tmp_path.iterdir()] == ["a_b"]


def test_download_restarts_the_file_on_retry(server: TestServer, tmp_path: Path) -> None:
    [r] = fastreq_iter([server.url("/flaky/dl/2")], backend="aiohttp", retry=FAST_RETRY,
                       download_dir=tmp_path)
    assert r.attempts == 3
    assert Path(r.value).read_bytes() == b'{"hits": 3}'  # not the 503 bodies before it


def test_return_type_stream_hands_over_chunks(server: TestServer, backend_name: str) -> None:
    got: dict[int, bytearray] = {}
    chunks: dict[int, int] = {}

    def on_chunk(chunk: bytes, index: int) -> None:
        if not chunk:  # a retry starts
            got[index] = bytearray()
            return
        got.setdefault(index, bytearray()).extend(chunk)
        chunks[index] = chunks.get(index, 0) + 1

    urls = [server.url("/bytes/2000000"), server.url("/text")]
    results = list(fastreq_iter(urls, backend=backend_name, return_type="stream",
                                stream_callback=on_chunk))
    _check_complete(results, 2)
    for r in results:
        assert isinstance(r.value, NormalizedResponse) and r.value.content == b""
    assert bytes(got[0]) == bytes(i % 256 for i in range(2_000_000))
    assert bytes(got[1]) == b"hello"
    assert chunks[0] > 1  # streamed, not one whole body


def test_large_body_options_are_checked(tmp_path: Path) -> None:
    cb: Any = lambda chunk, index: None  # noqa: E731
    with pytest.raises(ConfigurationError, match="go together"):
        fastreq.fastreq("http://h/", return_type="stream", backend=Instant())
    with pytest.raises(ConfigurationError, match="go together"):
        fastreq.fastreq("http://h/", stream_callback=cb, backend=Instant())
    with pytest.raises(ConfigurationError, match="not both"):
        fastreq.fastreq("http://h/", return_type="stream", stream_callback=cb,
                        download_dir=tmp_path, backend=Instant())
    with pytest.raises(ConfigurationError, match="parse_func"):
        fastreq.fastreq("http://h/", download_dir=tmp_path, parse_func=len, backend=Instant())
