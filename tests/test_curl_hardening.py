"""Curl-only hardening: async stream callbacks, body caps, method tokens, resend guard,
Proxy-Authorization routing, bare-LF header lines (see also test_faults / test_security)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

pytest.importorskip("pycurl")

from fastreq.backends._curl_response import parse_header_block
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.backends.curl import CurlBackend
from fastreq.exceptions import (
    BackendError,
    ConnectError,
    ProtocolError,
    ResponseDecodeError,
    ValidationError,
)

from ._faults import FaultServer
from ._proxy import ProxyServer
from ._server import TestServer

T = TypeVar("T")
LIMIT = 10.0


def _expected(n: int) -> bytes:
    return bytes(i % 256 for i in range(n))


def run(main: Callable[[CurlBackend], Coroutine[Any, Any, T]]) -> T:
    async def wrapper() -> T:
        backend = CurlBackend()
        try:
            return await main(backend)
        finally:
            await backend.close()

    return asyncio.run(wrapper())


async def _attempt(backend: CurlBackend, config: RequestConfig) -> NormalizedResponse | Exception:
    try:
        return await backend.request(config)
    except Exception as exc:
        return exc


# -- async on_chunk ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 100_000, 3 * 1024 * 1024 + 7])
def test_async_stream_callback_gets_every_chunk_in_order(server: TestServer, size: int) -> None:
    got: list[bytes] = []
    busy = 0

    async def on_chunk(chunk: bytes) -> None:
        nonlocal busy
        busy += 1
        assert busy == 1  # never two chunks at once: the transfer waits (back-pressure)
        await asyncio.sleep(0)
        got.append(chunk)
        await asyncio.sleep(0)
        busy -= 1

    async def main(backend: CurlBackend) -> NormalizedResponse:
        config = RequestConfig(server.url(f"/bytes/{size}"), stream=True, on_chunk=on_chunk,
                               timeout=LIMIT)
        return await backend.request(config)

    response = run(main)
    assert response.status_code == 200 and response.content == b""
    assert b"".join(got) == _expected(size)
    assert all(got)


def test_async_stream_callbacks_of_concurrent_requests_stay_apart(server: TestServer) -> None:
    sizes = [200_000 + 1000 * i for i in range(8)]
    got: dict[int, list[bytes]] = {n: [] for n in sizes}

    def sink(n: int) -> Callable[[bytes], Coroutine[Any, Any, None]]:
        async def on_chunk(chunk: bytes) -> None:
            await asyncio.sleep(0.001 if n % 2 else 0)
            got[n].append(chunk)

        return on_chunk

    async def main(backend: CurlBackend) -> list[NormalizedResponse]:
        configs = [RequestConfig(server.url(f"/bytes/{n}"), stream=True, on_chunk=sink(n),
                                 timeout=LIMIT) for n in sizes]
        return await asyncio.gather(*(backend.request(c) for c in configs))

    responses = run(main)
    assert [r.status_code for r in responses] == [200] * len(sizes)
    for n in sizes:
        assert b"".join(got[n]) == _expected(n)


def test_async_stream_callback_error_fails_that_request(server: TestServer) -> None:
    calls = 0

    async def on_chunk(chunk: bytes) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise OSError("disk full")

    async def main(backend: CurlBackend) -> tuple[Any, NormalizedResponse]:
        config = RequestConfig(server.url("/bytes/500000"), stream=True, on_chunk=on_chunk,
                               timeout=LIMIT)
        failed = await _attempt(backend, config)
        after = await backend.request(RequestConfig(server.url("/text"), timeout=LIMIT))
        return failed, after

    failed, after = run(main)
    assert isinstance(failed, BackendError) and isinstance(failed.__cause__, OSError), failed
    assert calls == 1
    assert after.status_code == 200 and after.text == "hello"  # the engine goes on


def test_cancelled_while_an_async_callback_waits(server: TestServer) -> None:
    gate = asyncio.Event()

    async def on_chunk(chunk: bytes) -> None:
        await gate.wait()

    async def main(backend: CurlBackend) -> NormalizedResponse:
        config = RequestConfig(server.url("/bytes/300000"), stream=True, on_chunk=on_chunk,
                               timeout=LIMIT)
        task = asyncio.ensure_future(backend.request(config))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()  # the callback finishes after its request is gone: nothing breaks
        await asyncio.sleep(0.05)
        return await backend.request(RequestConfig(server.url("/bytes/300000"), timeout=LIMIT))

    assert run(main).content == _expected(300000)


# -- max_body_size ----------------------------------------------------------------------------


_CAPS = [
    ("/bytes/1000", 1000, True), ("/bytes/1000", 999, False), ("/bytes/300000", 300000, True),
    ("/bytes/300000", 299999, False), ("/bytes/10", 0, False), ("/bytes/0", 0, True),
    ("/gzip", None, True), ("/gzip", 5, False), ("/bytes/1000", None, True),
]


def _check_caps(out: list[NormalizedResponse | Exception]) -> None:
    assert [isinstance(o, NormalizedResponse) for o in out] == [ok for _, _, ok in _CAPS], out
    for o, (_, cap, ok) in zip(out, _CAPS, strict=True):
        if not ok:
            assert isinstance(o, ResponseDecodeError) and f"({cap} bytes" in str(o), o


def test_body_cap_is_exact_on_plain_and_encoded_bodies(server: TestServer) -> None:
    async def one(url: str, cap: int | None) -> NormalizedResponse | Exception:
        backend = CurlBackend()  # a fresh handle each time
        try:
            config = RequestConfig(server.url(url), max_body_size=cap, timeout=LIMIT)
            return await _attempt(backend, config)
        finally:
            await backend.close()

    async def main() -> list[NormalizedResponse | Exception]:
        return [await one(url, cap) for url, cap, _ in _CAPS]

    _check_caps(asyncio.run(main()))


def test_body_cap_follows_each_request_on_a_reused_handle(server: TestServer) -> None:
    async def main(backend: CurlBackend) -> list[NormalizedResponse | Exception]:
        return [await _attempt(backend, RequestConfig(server.url(url), max_body_size=cap,
                                                      timeout=LIMIT)) for url, cap, _ in _CAPS]

    _check_caps(run(main))


def test_head_is_not_failed_by_a_large_content_length(server: TestServer) -> None:
    async def main(backend: CurlBackend) -> NormalizedResponse:
        config = RequestConfig(server.url("/bytes/5000"), method="HEAD", max_body_size=10,
                               timeout=LIMIT)
        return await backend.request(config)

    assert run(main).status_code == 200


def test_streamed_body_with_on_chunk_is_not_capped(server: TestServer) -> None:
    got: list[bytes] = []

    async def main(backend: CurlBackend) -> NormalizedResponse:
        config = RequestConfig(server.url("/bytes/100000"), stream=True, on_chunk=got.append,
                               max_body_size=10, timeout=LIMIT)
        return await backend.request(config)

    assert run(main).status_code == 200 and b"".join(got) == _expected(100000)


# -- request line, resends, proxy credentials -------------------------------------------------


@pytest.mark.parametrize("method", ["GET /x HTTP/1.1\r\nA: b\r\nX:", "GE T", "", "GÉT", "A\x00"])
def test_method_that_is_not_a_token_is_rejected(server: TestServer, method: str) -> None:
    async def main(backend: CurlBackend) -> NormalizedResponse | Exception:
        return await _attempt(backend, RequestConfig(server.url("/echo"), method=method))

    assert isinstance(run(main), ValidationError)
    assert server.hits == []


def test_custom_token_method_is_sent(server: TestServer) -> None:
    async def main(backend: CurlBackend) -> NormalizedResponse:
        return await backend.request(RequestConfig(server.url("/echo"), method="purge"))

    assert run(main).json_data["method"] == "PURGE"


@pytest.mark.parametrize("data", [None, b"x"])
def test_stale_keepalive_patch_is_not_resent(faults: FaultServer, data: bytes | None) -> None:
    config = RequestConfig(faults.url + "/stale", method="PATCH", data=data, timeout=LIMIT)

    async def main(backend: CurlBackend) -> list[NormalizedResponse | Exception]:
        return [await _attempt(backend, config), await _attempt(backend, config)]

    first, second = run(main)
    assert isinstance(first, NormalizedResponse) and first.status_code == 200
    assert isinstance(second, ProtocolError) and not isinstance(second, ConnectError), second
    assert "not resent" in str(second)
    assert [r.method for r in faults.records] == ["PATCH", "PATCH"]


def test_stale_keepalive_put_is_retried(faults: FaultServer) -> None:
    config = RequestConfig(faults.url + "/stale", method="PUT", data=b"x", timeout=LIMIT)

    async def main(backend: CurlBackend) -> list[NormalizedResponse]:
        return [await backend.request(config), await backend.request(config)]

    assert [r.status_code for r in run(main)] == [200, 200]
    assert [r.method for r in faults.records] == ["PUT"] * 3


def test_proxy_authorization_goes_only_to_a_proxy(
    server: TestServer, proxy_server: ProxyServer
) -> None:
    headers = {"Proxy-Authorization": "Basic c2VjcmV0", "X-Other": "1"}

    async def main(backend: CurlBackend) -> None:
        await backend.request(RequestConfig(server.url("/echo"), headers=headers))
        await backend.request(RequestConfig(server.url("/echo"), headers=headers,
                                            proxy=proxy_server.url))

    run(main)
    direct = server.hits_for("/echo")[0].headers
    assert "x-other" in direct and "proxy-authorization" not in direct
    assert proxy_server.records[0].headers.get("proxy-authorization") == "Basic c2VjcmV0"


def test_bare_lf_in_a_header_block_splits_the_line() -> None:
    items, joined = parse_header_block(
        b"HTTP/1.1 200 OK\r\nX-Bad: a\nInjected: yes\r\nX-Fold: b\r\n  c\r\n\r\nTrailer: t\r\n"
    )
    assert items == [("x-bad", "a"), ("injected", "yes"), ("x-fold", "b c")]
    assert joined == {"x-bad": "a", "injected": "yes", "x-fold": "b c"}
