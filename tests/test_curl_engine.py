"""Engine-specific tests of ``CurlBackend`` (libcurl multi driven by the event loop).

The shared, backend-parametrized behaviour suite lives in ``test_backends.py``; these tests
cover what only this engine has: batching under load, connection reuse, cancellation of
in-flight transfers, the socket pollers, HTTP/2 gating, lazy headers and the curl error
codes. Real servers on 127.0.0.1 only; no timed assertions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import pickle
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

pycurl = pytest.importorskip("pycurl")

from fastreq.backends._curl_response import make_response  # noqa: E402
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig  # noqa: E402
from fastreq.backends.curl import CurlBackend  # noqa: E402
from fastreq.exceptions import (  # noqa: E402
    BackendError,
    ConnectError,
    ConnectTimeoutError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    RequestTimeoutError,
    TLSError,
    TooManyRedirectsError,
    ValidationError,
)
from fastreq.timeouts import Timeout  # noqa: E402

from ._proxy import ProxyServer  # noqa: E402
from ._server import TestServer  # noqa: E402

T = TypeVar("T")
POLLERS = ["epoll", "loop"] if hasattr(__import__("select"), "epoll") else ["loop"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def run_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    uvloop = pytest.importorskip("uvloop")
    result: T = uvloop.run(coro)
    return result


def assert_idle(backend: Backend) -> None:
    """Nothing left inside the multi handle: no leaked transfer, no stale future."""
    assert isinstance(backend, CurlBackend)
    engine = backend._engine
    assert engine is not None
    assert engine._busy == {}
    assert engine._in_multi == 0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def hangup_port() -> Iterator[int]:
    """A port whose server reads the request, then closes without a byte of reply."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop = True
    thread.join(2)
    sock.close()


# -- load, reuse, batching -------------------------------------------------------------------
def test_many_concurrent_requests_all_complete(server: TestServer) -> None:
    n, in_flight = 2000, 200

    async def main() -> list[NormalizedResponse]:
        backend = CurlBackend()
        queue = list(range(n))
        out: list[NormalizedResponse | None] = [None] * n

        async def worker() -> None:
            while queue:
                i = queue.pop()
                out[i] = await backend.request(RequestConfig(server.url(f"/json/{i}")))

        async with backend:
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            assert_idle(backend)
        return [r for r in out if r is not None]

    responses = run(main())
    assert len(responses) == n
    assert [r.json() for r in responses] == [{"n": i} for i in range(n)]
    assert all(r.status_code == 200 and r.http_version == "HTTP/1.1" for r in responses)
    ports = {hit.peer_port for hit in server.hits}
    assert len(ports) <= in_flight + 10  # keep-alive: connections are reused


def test_connections_are_reused_per_host(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            for _ in range(30):
                batch = [RequestConfig(server.url("/json")) for _ in range(5)]
                rs = await asyncio.gather(*(backend.request(c) for c in batch))
                assert {r.status_code for r in rs} == {200}

    run(main())
    assert len(server.hits) == 150
    assert len({hit.peer_port for hit in server.hits}) <= 10


def test_max_host_connections_caps_connections(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend(max_host_connections=2) as backend:
            rs = await asyncio.gather(
                *(backend.request(RequestConfig(server.url("/json"))) for _ in range(40))
            )
            assert {r.status_code for r in rs} == {200}

    run(main())
    assert len({hit.peer_port for hit in server.hits}) <= 2


@pytest.mark.parametrize("poller", POLLERS)
def test_pollers_work_on_default_loop_and_uvloop(server: TestServer, poller: str) -> None:
    async def main() -> list[int]:
        async with CurlBackend(poller=poller) as backend:
            rs = await asyncio.gather(
                *(backend.request(RequestConfig(server.url(f"/json/{i}"))) for i in range(50))
            )
            assert_idle(backend)
            return [r.json()["n"] for r in rs]

    assert run(main()) == list(range(50))
    assert run_uvloop(main()) == list(range(50))


def test_request_sync_and_close_sync(server: TestServer) -> None:
    with CurlBackend() as backend:
        r = backend.request_sync(RequestConfig(server.url("/json")))
        assert r.status_code == 200
        assert r.json() == {"ok": True, "path": "/json"}
        assert backend.request_sync(RequestConfig(server.url("/text"))).text == "hello"


def test_usable_again_after_close_and_across_loops(server: TestServer) -> None:
    backend = CurlBackend()

    async def one() -> int:
        return (await backend.request(RequestConfig(server.url("/json")))).status_code

    assert run(one()) == 200
    assert run(one()) == 200  # the first loop is closed: a fresh engine on the new one

    async def close_then_use() -> int:
        await backend.close()
        await backend.close()  # idempotent
        return await one()

    assert run(close_then_use()) == 200
    run(backend.close())
    assert backend._engine is None


# -- cancellation ------------------------------------------------------------------------------
@pytest.mark.parametrize("poller", POLLERS)
def test_cancel_in_flight_requests_leaks_nothing(server: TestServer, poller: str) -> None:
    async def main() -> None:
        async with CurlBackend(poller=poller) as backend:
            slow = [
                asyncio.ensure_future(
                    backend.request(RequestConfig(server.url("/slow?delay=2")))
                )
                for _ in range(30)
            ]
            fast = [backend.request(RequestConfig(server.url("/json"))) for _ in range(10)]
            assert {r.status_code for r in await asyncio.gather(*fast)} == {200}
            await asyncio.sleep(0.05)
            for task in slow:
                task.cancel()
            results = await asyncio.gather(*slow, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            assert_idle(backend)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    backend.request(RequestConfig(server.url("/slow?delay=2"))), 0.1
                )
            assert_idle(backend)
            # the engine keeps working, the handles come back to the pool
            rs = await asyncio.gather(
                *(backend.request(RequestConfig(server.url(f"/json/{i}"))) for i in range(40))
            )
            assert [r.json()["n"] for r in rs] == list(range(40))
            assert_idle(backend)

    run(main())


def test_cancel_while_waiting_for_the_first_tls_connection(tls_server: TestServer) -> None:
    ca = tls_server.ca_path  # type: ignore[attr-defined]

    async def main() -> None:
        async with CurlBackend(ca_bundle=ca) as backend:
            url = tls_server.url("/json")
            first = asyncio.ensure_future(backend.request(RequestConfig(url)))
            waiting = [asyncio.ensure_future(backend.request(RequestConfig(url)))
                       for _ in range(5)]
            await asyncio.sleep(0)
            for task in waiting[:3]:
                task.cancel()
            assert (await first).status_code == 200
            done = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in done[:3])
            assert [r.status_code for r in done[3:]] == [200, 200]  # type: ignore[union-attr]
            assert_idle(backend)

    run(main())


def test_close_while_requests_are_in_flight(server: TestServer) -> None:
    async def main() -> None:
        backend = CurlBackend()
        pending = [
            asyncio.ensure_future(backend.request(RequestConfig(server.url("/slow?delay=2"))))
            for _ in range(5)
        ]
        await asyncio.sleep(0.1)
        await backend.close()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, BackendError) and "closed" in str(r) for r in results)
        r = await backend.request(RequestConfig(server.url("/json")))  # lazy re-init
        assert r.status_code == 200
        await backend.close()

    run(main())


# -- responses ---------------------------------------------------------------------------------
def test_only_the_final_responses_headers_after_redirects(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            r = await backend.request(RequestConfig(server.url("/redirect/3")))
            assert r.status_code == 200
            assert r.url == server.url("/json")
            assert "location" not in r.headers
            assert r.get_all("content-type") == ["application/json"]
            assert r.json() == {"ok": True, "path": "/json"}

            r = await backend.request(
                RequestConfig(server.url("/redirect/3"), follow_redirects=False)
            )
            assert r.status_code == 302
            assert r.headers["location"] == "/redirect/2"
            assert r.url == server.url("/redirect/3")

            with pytest.raises(TooManyRedirectsError) as info:
                await backend.request(RequestConfig(server.url("/redirect/5"), max_redirects=2))
            assert info.value.code == 47
            assert info.value.backend_name == "curl"

    run(main())


def test_repeated_set_cookie_kept_and_never_stored(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            r = await backend.request(RequestConfig(server.url("/set-cookies")))
            cookies = r.get_all("set-cookie")
            assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2"]
            assert r.headers["set-cookie"].count("=") >= 2
            echo = await backend.request(RequestConfig(server.url("/echo")))
            assert echo.json()["cookies"] == {}  # no cookie engine
            sent = await backend.request(
                RequestConfig(server.url("/echo"), cookies={"s": "1", "t": "2"})
            )
            assert sent.json()["cookies"] == {"s": "1", "t": "2"}

    run(main())


def test_lazy_headers_match_eager_parsing_and_pickle() -> None:
    blob = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n"
        b"X-Folded: one\r\n  two\r\nSet-Cookie: b=2\r\n\r\n"
    )
    lazy = make_response(200, blob, b"{}", "http://x/", True, "HTTP/1.1", 0.1, lazy=True)
    eager = make_response(200, blob, b"{}", "http://x/", True, "HTTP/1.1", 0.1, lazy=False)
    assert isinstance(lazy, NormalizedResponse)
    assert lazy.header_items == eager.header_items == [
        ("content-type", "application/json"), ("set-cookie", "a=1"),
        ("x-folded", "one two"), ("set-cookie", "b=2"),
    ]
    assert lazy.headers == eager.headers
    assert lazy.headers["set-cookie"] == "a=1, b=2"
    assert lazy.get_all("Set-Cookie") == ["a=1", "b=2"]
    fresh = make_response(200, blob, b"{}", "http://x/", True, "HTTP/1.1", 0.1, lazy=True)
    for clone in (pickle.loads(pickle.dumps(fresh)), copy.copy(fresh)):
        assert clone.header_items == eager.header_items
        assert clone.headers == eager.headers
        assert (clone.status_code, clone.content, clone.url) == (200, b"{}", "http://x/")


def test_streaming_to_on_chunk_keeps_no_body(server: TestServer) -> None:
    size = 300_000
    expected = bytes(i % 256 for i in range(size))

    async def main() -> None:
        async with CurlBackend() as backend:
            chunks: list[bytes] = []
            r = await backend.request(
                RequestConfig(server.url(f"/bytes/{size}"), stream=True, on_chunk=chunks.append)
            )
            assert r.status_code == 200
            assert r.content == b""
            assert len(chunks) > 1
            assert b"".join(chunks) == expected
            # stream=True without a callback: buffered as usual
            r = await backend.request(RequestConfig(server.url(f"/bytes/{size}"), stream=True))
            assert r.content == expected
            # the pooled handle forgets the callback
            r = await backend.request(RequestConfig(server.url("/json")))
            assert r.json() == {"ok": True, "path": "/json"}

            def boom(chunk: bytes) -> None:
                raise ValueError("disk full")

            with pytest.raises(BackendError) as info:
                await backend.request(
                    RequestConfig(server.url(f"/bytes/{size}"), stream=True, on_chunk=boom)
                )
            assert isinstance(info.value.__cause__, ValueError)
            assert (await backend.request(RequestConfig(server.url("/json")))).status_code == 200
            assert_idle(backend)

    run(main())


# -- what goes on the wire -------------------------------------------------------------------------
def test_methods_and_bodies(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            async def echo(**kw: Any) -> dict[str, Any]:
                r = await backend.request(RequestConfig(server.url("/echo"), **kw))
                assert r.status_code == 200
                data: dict[str, Any] = r.json()
                return data

            got = await echo(method="POST", json={"a": [1, "é"]})
            assert got["method"] == "POST"
            assert json.loads(got["body"]) == {"a": [1, "é"]}
            assert got["headers"]["content-type"] == "application/json"
            got = await echo(method="PUT", data=b"a\x00b")
            assert (got["method"], got["headers"]["content-length"]) == ("PUT", "3")
            got = await echo(method="PATCH", data={"k": "v w"})
            assert (got["method"], got["body"]) == ("PATCH", "k=v+w")
            got = await echo(method="POST")
            assert got["headers"]["content-length"] == "0"
            got = await echo(method="DELETE", params={"x": 1})
            assert got["method"] == "DELETE"
            assert got["query"] == [["x", "1"]]
            got = await echo(method="OPTIONS")
            assert got["method"] == "OPTIONS"
            big = await echo(method="POST", data=b"z" * 200_000)
            assert "expect" not in big["headers"]  # no Expect: 100-continue
            assert len(big["body"]) == 200_000
            got = await echo()  # GET again on a pooled handle: nothing left over
            assert (got["method"], got["body"]) == ("GET", "")
            head = await backend.request(RequestConfig(server.url("/json"), method="HEAD"))
            assert head.status_code == 200
            assert head.content == b""

    run(main())


def test_request_headers(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            async def sent(headers: dict[str, str]) -> dict[str, str]:
                r = await backend.request(RequestConfig(server.url("/echo"), headers=headers))
                got: dict[str, str] = r.json()["headers"]
                return got

            got = await sent({"Accept": "application/json", "X-Empty": "", "X-A": "1"})
            assert got["accept"] == "application/json"  # not "*/*" added by libcurl
            assert got["x-empty"] == ""
            assert got["x-a"] == "1"
            assert "gzip" in got["accept-encoding"]
            assert "user-agent" not in got
            got = await sent({"Accept-Encoding": "gzip"})
            assert got["accept-encoding"] == "gzip"
            # one pooled handle, only the headers change between requests (UA rotation)
            for agent in ("agent/1", "agent/2", "agent/3"):
                got = await sent({"User-Agent": agent, "X-A": agent})
                assert (got["user-agent"], got["x-a"]) == (agent, agent)
                assert "gzip" in got["accept-encoding"]
            got = await sent({})
            assert "user-agent" not in got
            assert "x-a" not in got
            with pytest.raises(ValidationError):
                await sent({"X-Bad": "a\r\nInjected: 1"})
            r = await backend.request(RequestConfig(server.url("/gzip")))
            assert r.json() == {"compressed": True}
            r = await backend.request(
                RequestConfig(server.url("/gzip"), headers={"Accept-Encoding": "gzip"})
            )
            assert r.json() == {"compressed": True}
            assert_idle(backend)

    run(main())


def test_user_agent_rotation_keeps_the_header_list(server: TestServer) -> None:
    """The User-Agent goes through CURLOPT_USERAGENT: only it changes between requests."""
    async def main() -> None:
        async with CurlBackend() as backend:
            async def sent(headers: dict[str, str] | None) -> dict[str, str]:
                r = await backend.request(RequestConfig(server.url("/echo"), headers=headers))
                got: dict[str, str] = r.json()["headers"]
                return got

            for i, name in enumerate(["User-Agent", "user-agent", "USER-AGENT", "User-Agent"]):
                got = await sent({name: f"agent/{i}", "X-Keep": "k", "Accept": "a/b"})
                assert got["user-agent"] == f"agent/{i}"
                assert (got["x-keep"], got["accept"]) == ("k", "a/b")
            got = await sent({"X-Keep": "k", "Accept": "a/b"})  # same list, no agent
            assert "user-agent" not in got
            assert got["x-keep"] == "k"
            got = await sent({"User-Agent": ""})  # an empty value is sent as such
            assert got["user-agent"] == ""
            got = await sent({"User-Agent": "again"})
            assert got["user-agent"] == "again"
            assert "x-keep" not in got
            got = await sent(None)
            assert "user-agent" not in got
            with pytest.raises(ValidationError):
                await sent({"User-Agent": "a\r\nInjected: 1"})
            got = await sent({"User-Agent": "after-error", "X-Keep": "k"})
            assert (got["user-agent"], got["x-keep"]) == ("after-error", "k")
            cookies = await backend.request(RequestConfig(
                server.url("/echo"), headers={"User-Agent": "c"}, cookies={"s": "1"}))
            assert cookies.json()["cookies"] == {"s": "1"}
            assert cookies.json()["headers"]["user-agent"] == "c"
            posted = await backend.request(RequestConfig(
                server.url("/echo"), method="POST", json={"a": 1}, headers={"user-agent": "p"}))
            assert posted.json()["headers"]["user-agent"] == "p"
            assert posted.json()["headers"]["content-type"] == "application/json"

    run(main())


def test_directly_built_response_matches_the_init_path() -> None:
    from fastreq.backends._lazy_response import LAZY

    assert LAZY  # the base class's layout is the one assembled slot by slot
    blob = b"HTTP/2 201 \r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n"
    args = (201, blob, b"hi", "http://x/", False, "HTTP/2", 0.25)
    direct = make_response(*args, lazy=True)
    slow = make_response(*args, lazy=False)
    assert type(slow) is NormalizedResponse and isinstance(direct, NormalizedResponse)
    for name in ("status_code", "content", "url", "is_json", "http_version", "elapsed",
                 "header_items", "headers", "text"):
        assert getattr(direct, name) == getattr(slow, name), name
    assert direct.has_header("x-a") and not direct.has_header("x-b")
    assert pickle.loads(pickle.dumps(direct)).headers == {"content-type": "text/plain", "x-a": "1"}


def test_large_bodies_arrive_whole_with_a_big_receive_buffer(server: TestServer) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            rs = await asyncio.gather(*(
                backend.request(RequestConfig(server.url(f"/bytes/{n}")))
                for n in (0, 1, 65_536, 262_144, 262_145, 1_000_003)
            ))
            sizes = [0, 1, 65_536, 262_144, 262_145, 1_000_003]
            assert [len(r.content) for r in rs] == sizes
            for r, n in zip(rs, sizes, strict=True):
                assert r.content == bytes(i % 256 for i in range(n))

    run(main())


def test_environment_proxies_are_ignored(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)

    async def main() -> int:
        async with CurlBackend() as backend:
            return (await backend.request(RequestConfig(server.url("/json")))).status_code

    assert run(main()) == 200


def test_proxy_credentials_are_unquoted(server: TestServer, proxy_server: ProxyServer) -> None:
    proxy = proxy_server.url.replace("http://", "http://us%40er:p%3Ass@")

    async def main() -> int:
        async with CurlBackend() as backend:
            r = await backend.request(RequestConfig(server.url("/json"), proxy=proxy))
            return r.status_code

    assert run(main()) == 200
    auth = proxy_server.records[-1].headers["proxy-authorization"]
    assert base64.b64decode(auth.split()[1]) == b"us@er:p:ss"


# -- errors -------------------------------------------------------------------------------------
def _raises(coro_factory: Callable[[], Coroutine[Any, Any, Any]]) -> BackendError:
    try:
        run(coro_factory())
    except BackendError as exc:
        return exc
    raise AssertionError("no error raised")


def test_connection_refused_is_connect_error(refused_url: str) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            await backend.request(RequestConfig(refused_url))

    exc = _raises(main)
    assert type(exc) is ConnectError
    assert exc.code == 7
    assert exc.backend_name == "curl"
    assert exc.url == refused_url
    assert isinstance(exc.__cause__, pycurl.error)
    assert "curl error 7" in str(exc)


def test_timeouts(silent_port: int) -> None:
    async def total() -> None:
        async with CurlBackend() as backend:
            await backend.request(
                RequestConfig(f"http://127.0.0.1:{silent_port}/", timeout=0.3)
            )

    exc = _raises(total)
    assert isinstance(exc, RequestTimeoutError)
    assert isinstance(exc, ReadTimeoutError)  # connected (kernel backlog), no reply
    assert exc.code == 28

    async def tls_handshake() -> None:
        async with CurlBackend() as backend:
            await backend.request(
                RequestConfig(f"https://127.0.0.1:{silent_port}/",
                              timeout=Timeout(connect=0.3, total=5))
            )

    exc = _raises(tls_handshake)  # the TLS handshake is part of connecting
    assert isinstance(exc, ConnectTimeoutError)

    async def read() -> None:
        async with CurlBackend() as backend:
            await backend.request(
                RequestConfig(f"http://127.0.0.1:{silent_port}/", timeout=Timeout(read=1))
            )

    exc = _raises(read)  # low-speed limit: < 1 byte/s for 1 s
    assert isinstance(exc, ReadTimeoutError)


def test_empty_reply_is_protocol_error(hangup_port: int) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            await backend.request(RequestConfig(f"http://127.0.0.1:{hangup_port}/"))

    exc = _raises(main)
    assert isinstance(exc, ProtocolError)
    assert exc.code == 52  # CURLE_GOT_NOTHING


def test_refused_proxy_is_proxy_error(server: TestServer, refused_url: str) -> None:
    async def main() -> None:
        async with CurlBackend() as backend:
            await backend.request(RequestConfig(server.url("/json"), proxy=refused_url))

    assert isinstance(_raises(main), ProxyError)


def test_tls_verification_per_request(tls_server: TestServer) -> None:
    ca = tls_server.ca_path  # type: ignore[attr-defined]
    url = tls_server.url("/json")

    async def main() -> None:
        async with CurlBackend() as backend:
            with pytest.raises(TLSError) as info:
                await backend.request(RequestConfig(url))
            assert info.value.code == 60
            r = await backend.request(RequestConfig(url, verify_ssl=False))
            assert r.status_code == 200
            with pytest.raises(TLSError):  # verification is back on for the next request
                await backend.request(RequestConfig(url))
            assert_idle(backend)
        async with CurlBackend(ca_bundle=ca) as trusting:
            r = await trusting.request(RequestConfig(url))
            assert (r.status_code, r.http_version) == (200, "HTTP/1.1")
            assert r.elapsed is not None and r.elapsed > 0

    run(main())
    run_uvloop(main())


def test_https_cold_burst_to_http1_server_is_not_serialized(tls_server: TestServer) -> None:
    """The first request to an https origin goes alone; the others wait only for its
    connection, not for its (slow) response, then open their own connections."""
    ca = tls_server.ca_path  # type: ignore[attr-defined]

    async def main() -> list[bool]:
        async with CurlBackend(ca_bundle=ca) as backend:
            slow = asyncio.ensure_future(
                backend.request(RequestConfig(tls_server.url("/slow?delay=1")))
            )
            fast = await asyncio.gather(
                *(backend.request(RequestConfig(tls_server.url(f"/json/{i}")))
                  for i in range(10))
            )
            pending = not slow.done()
            assert [r.json()["n"] for r in fast] == list(range(10))
            assert (await slow).status_code == 200
            return [pending]

    assert run(main()) == [True]


def test_backend_basics() -> None:
    backend = CurlBackend()
    assert backend.name == "curl"
    assert backend.supports_http2() is True
    with pytest.raises(ValidationError):
        CurlBackend(max_host_connections=-1)
    with pytest.raises(ValidationError):
        CurlBackend(poller="select")

    async def bad_proxy() -> None:
        async with CurlBackend() as b:
            await b.request(RequestConfig("http://127.0.0.1:9/", proxy="ftp://127.0.0.1:21"))

    with pytest.raises(ValidationError):
        run(bad_proxy())
