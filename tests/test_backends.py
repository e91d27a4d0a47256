"""The backend contract: every backend passes every test here.

Each test runs once per installed backend (the ``backend_name`` fixture), talks to the backend
directly with a :class:`RequestConfig` against the real servers of ``conftest.py`` (plain
HTTP, HTTPS with a self-signed certificate, a recording forward proxy) and checks what reached
the server as well as what came back. Tests are plain sync functions driving
``asyncio.run(...)``; nothing here measures speed. Where a time is checked, it only proves a
limit was enforced (the request ended well before the server would have answered).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pytest

from fastreq.backends import create_backend
from fastreq.backends._common import encode_body
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConnectError,
    ConnectTimeoutError,
    FastRequestsError,
    PoolTimeoutError,
    ProtocolError,
    ProxyError,
    RequestTimeoutError,
    TLSError,
    TooManyRedirectsError,
    TransportError,
    ValidationError,
)
from fastreq.timeouts import Timeout

from ._proxy import FaultServer, ProxyServer, UploadSink, basic_auth_header
from ._server import TestServer, closed_port

E = TypeVar("E", bound=BaseException)

#: Requests expected to succeed get this total limit, so a broken adapter fails instead of
#: hanging until pytest-timeout (``test_no_timeout`` covers ``timeout=None``).
LIMIT = 10.0

#: Errors that tell the retry policy "the request was never sent" (safe to retry a POST).
_NOT_SENT = (ConnectError, ConnectTimeoutError, PoolTimeoutError)


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def backend(backend_name: str) -> Iterator[Backend]:
    instance = create_backend(backend_name)
    yield instance
    instance.close_sync()  # tests close in their own loop; this only stops a leftover portal


def _cfg(backend: Backend, url: str, **options: Any) -> RequestConfig:
    # HTTP/2 is asked for only where the backend has it; test_http2_* covers the other case.
    options.setdefault("timeout", LIMIT)
    return RequestConfig(url, **options)


def _run(backend: Backend, *configs: RequestConfig) -> list[NormalizedResponse]:
    """Send ``configs`` one after another on one backend instance, in one event loop."""

    async def main() -> list[NormalizedResponse]:
        async with backend:
            return [await backend.request(config) for config in configs]

    return asyncio.run(main())


def _get(backend: Backend, url: str, **options: Any) -> NormalizedResponse:
    return _run(backend, _cfg(backend, url, **options))[0]


def _raises(backend: Backend, expected: type[E], url: str, **options: Any) -> E:
    config = _cfg(backend, url, **options)
    with pytest.raises(expected) as info:
        _run(backend, config)
    return info.value


def _check_error(err: BaseException, backend_name: str, *, cause: bool = False) -> None:
    assert isinstance(err, FastRequestsError)
    assert isinstance(err, BackendError)
    assert err.backend_name == backend_name
    if cause:
        assert err.__cause__ is not None, "the library's exception must be kept as __cause__"


def _echo(response: NormalizedResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.content[:200]
    data: dict[str, Any] = response.json()
    return data


# -- identity ----------------------------------------------------------------------------


def test_name_and_http2_flag(backend: Backend, backend_name: str) -> None:
    assert backend.name == backend_name
    assert isinstance(backend.supports_http2(), bool)


def test_close_without_use_and_twice(backend: Backend) -> None:
    async def main() -> None:
        await backend.close()
        await backend.close()

    asyncio.run(main())


# -- responses ---------------------------------------------------------------------------


def test_get_json(backend: Backend, server: TestServer) -> None:
    url = server.url("/json")
    r = _get(backend, url)
    assert isinstance(r, NormalizedResponse)
    assert r.status_code == 200
    assert r.url == url
    assert all(name == name.lower() for name in r.headers)
    assert all(name == name.lower() for name, _ in r.header_items)
    assert r.headers["content-type"].startswith("application/json")
    assert r.get_all("Content-Type") == [r.headers["content-type"]]
    assert r.content == json.dumps({"ok": True, "path": "/json"}).encode()
    assert r.is_json is True
    assert r.json_data == {"ok": True, "path": "/json"}
    assert [h.method for h in server.hits] == ["GET"]


def test_text_with_charset(backend: Backend, server: TestServer) -> None:
    latin1, utf8 = _run(
        backend, _cfg(backend, server.url("/latin1")), _cfg(backend, server.url("/text"))
    )
    assert latin1.content == "café".encode("iso-8859-1")
    assert latin1.text == "café"
    assert latin1.is_json is False
    assert latin1.json_data is None
    assert utf8.text == "hello"


def test_bytes(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/bytes/1000"))
    assert r.content == bytes(i % 256 for i in range(1000))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.is_json is False


def test_large_body_intact(backend: Backend, server: TestServer) -> None:
    n = 3 * 1024 * 1024 + 7
    r = _get(backend, server.url(f"/bytes/{n}"))
    assert len(r.content) == n
    assert r.content == bytes(i % 256 for i in range(n))


def test_plus_json_content_type(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/problem"))
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.is_json is True
    assert r.json_data == {"title": "nope"}


def test_error_statuses_are_responses(backend: Backend, server: TestServer) -> None:
    codes = [400, 404, 418, 429, 500, 503]
    responses = _run(backend, *(_cfg(backend, server.url(f"/status/{c}")) for c in codes))
    assert [r.status_code for r in responses] == codes
    assert [r.json_data for r in responses] == [{"status": c} for c in codes]


def test_empty_204(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/status/204"))
    assert r.status_code == 204
    assert r.content == b""
    assert r.json_data is None


def test_gzip_decoded(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/gzip"))
    assert r.status_code == 200
    assert r.json_data == {"compressed": True}
    assert json.loads(r.content) == {"compressed": True}


def test_no_timeout(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/json"), timeout=None)
    assert r.status_code == 200


# -- methods -----------------------------------------------------------------------------


def test_head(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), method="HEAD")
    assert r.status_code == 200
    assert r.content == b""
    assert [h.method for h in server.hits] == ["HEAD"]


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "PATCH", "DELETE", "POST"])
def test_methods(backend: Backend, server: TestServer, method: str) -> None:
    r = _get(backend, server.url("/echo"), method=method)
    assert _echo(r)["method"] == method
    assert [h.method for h in server.hits] == [method]


def test_lower_case_method(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), method="put", data=b"x")
    assert _echo(r)["method"] == "PUT"


# -- query parameters --------------------------------------------------------------------


def test_params_lists_none_and_existing_query(backend: Backend, server: TestServer) -> None:
    params = {"a": "1", "b": ["x", "y"], "c": None, "q": "a b&c=d/é"}
    r = _get(backend, server.url("/echo?z=0"), params=params)
    expected = [["z", "0"], ["a", "1"], ["b", "x"], ["b", "y"], ["q", "a b&c=d/é"]]
    assert _echo(r)["query"] == expected
    assert server.hits[0].query == [tuple(pair) for pair in expected]
    final = urlsplit(r.url)
    assert final.path == "/echo"
    assert parse_qsl(final.query) == [tuple(pair) for pair in expected]


def test_params_scalars(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), params={"n": 5, "t": True, "f": False, "x": 1.5})
    assert _echo(r)["query"] == [["n", "5"], ["t", "true"], ["f", "false"], ["x", "1.5"]]


# -- bodies ------------------------------------------------------------------------------


def test_data_bytes(backend: Backend, server: TestServer) -> None:
    body = b"\x00\x01\xfe\xffraw bytes"
    r = _get(backend, server.url("/echo"), method="POST", data=body)
    assert r.status_code == 200
    (hit,) = server.hits
    assert hit.body == body
    assert hit.headers["content-length"] == str(len(body))


def test_data_str_is_utf8(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), method="POST", data="héllo wörld")
    assert _echo(r)["body"] == "héllo wörld"
    assert server.hits[0].body == "héllo wörld".encode()


def test_data_form_dict(backend: Backend, server: TestServer) -> None:
    data = {"a": "1", "b": ["2", "3"], "sp": "x y", "none": None}
    r = _get(backend, server.url("/echo"), method="POST", data=data)
    assert r.status_code == 200
    hit = server.hits[0]
    assert hit.body == b"a=1&b=2&b=3&sp=x+y"
    assert hit.headers["content-type"] == "application/x-www-form-urlencoded"


def test_json_body(backend: Backend, server: TestServer) -> None:
    payload = {"x": [1, 2, None], "s": "é", "nested": {"t": True}}
    config = _cfg(backend, server.url("/echo"), method="POST", json=payload)
    (r,) = _run(backend, config)
    assert r.status_code == 200
    hit = server.hits[0]
    assert hit.headers["content-type"] == "application/json"
    assert json.loads(hit.body) == payload
    assert hit.body == encode_body(config)[0]  # every backend sends the same bytes


def test_caller_content_type_wins(backend: Backend, server: TestServer) -> None:
    _run(
        backend,
        _cfg(
            backend,
            server.url("/echo"),
            method="PATCH",
            json={"a": 1},
            headers={"Content-Type": "application/merge-patch+json"},
        ),
        _cfg(
            backend,
            server.url("/echo"),
            method="POST",
            data={"a": "1"},
            headers={"content-type": "text/x-custom"},
        ),
    )
    assert [h.headers["content-type"] for h in server.hits] == [
        "application/merge-patch+json",
        "text/x-custom",
    ]


@pytest.fixture(scope="module")
def upload_sink() -> Iterator[UploadSink]:
    sink = UploadSink()
    yield sink
    sink.stop()


def test_large_upload(backend: Backend, upload_sink: UploadSink) -> None:
    body = bytes(i % 251 for i in range(3 * 1024 * 1024))
    r = _get(backend, upload_sink.url + "/upload", method="POST", data=body)
    assert r.status_code == 200
    assert r.json_data == {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert len(r.get_all("content-type")) == 1  # no interim "100 Continue" headers


def test_interim_100_continue_not_leaked(backend: Backend, server: TestServer) -> None:
    # The server answers "100 Continue" first; only the final response's headers count.
    r = _get(
        backend,
        server.url("/status/201"),
        method="POST",
        data=b"x" * 5000,
        headers={"Expect": "100-continue"},
    )
    assert r.status_code == 201
    assert r.json_data == {"status": 201}
    assert server.hits[0].body == b"x" * 5000
    assert len(r.get_all("content-type")) == 1
    assert len(r.get_all("content-length")) <= 1


def test_data_and_json_together_is_a_validation_error(backend: Backend, server: TestServer) -> None:
    _raises(backend, ValidationError, server.url("/echo"), method="POST", data=b"x", json={})
    assert server.hits == []


def test_bad_data_type_is_a_validation_error(backend: Backend, server: TestServer) -> None:
    _raises(backend, ValidationError, server.url("/echo"), method="POST", data=object())
    assert server.hits == []


# -- headers and cookies -----------------------------------------------------------------


def test_headers_sent_and_callers_dicts_untouched(backend: Backend, server: TestServer) -> None:
    headers = {"X-Test": "yes", "User-Agent": "fastreq-contract/1", "Accept": "application/json"}
    cookies = {"session": "abc123"}
    params = {"a": "1"}
    payload = {"k": "v"}
    before = (dict(headers), dict(cookies), dict(params), dict(payload))
    r = _get(
        backend,
        server.url("/echo"),
        method="POST",
        headers=headers,
        cookies=cookies,
        params=params,
        json=payload,
    )
    sent = _echo(r)["headers"]
    assert sent["x-test"] == "yes"
    assert sent["user-agent"] == "fastreq-contract/1"
    assert sent["accept"] == "application/json"
    assert (headers, cookies, params, payload) == before


def test_cookies_sent(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), cookies={"session": "abc123", "theme": "dark"})
    echo = _echo(r)
    assert echo["cookies"] == {"session": "abc123", "theme": "dark"}
    assert "session=abc123" in echo["headers"]["cookie"]


def test_cookies_merge_with_caller_cookie_header(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/echo"), headers={"Cookie": "a=1"}, cookies={"b": "2"})
    assert _echo(r)["cookies"] == {"a": "1", "b": "2"}


def test_repeated_set_cookie_kept(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/set-cookies"))
    values = r.get_all("set-cookie")
    assert len(values) == 2
    assert values[0].startswith("a=1")
    assert values[1].startswith("b=2")
    assert "a=1" in r.headers["set-cookie"]
    assert "b=2" in r.headers["set-cookie"]


def test_set_cookie_not_persisted(backend: Backend, server: TestServer) -> None:
    # Cookies are the caller's business (RequestConfig.cookies); a backend keeps no jar.
    # Also by host name: some jars (aiohttp's) silently ignore cookies from IP addresses.
    by_name = server.base.replace("127.0.0.1", "localhost")
    responses = _run(
        backend,
        _cfg(backend, server.url("/set-cookies")),
        _cfg(backend, server.url("/echo")),
        _cfg(backend, by_name + "/set-cookies"),
        _cfg(backend, by_name + "/echo"),
    )
    assert len(responses[2].get_all("set-cookie")) == 2
    for echo in (responses[1], responses[3]):
        assert "cookie" not in _echo(echo)["headers"]
    assert all("cookie" not in hit.headers for hit in server.hits)


# -- redirects ---------------------------------------------------------------------------


def test_redirects_followed(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/redirect/3"))
    assert r.status_code == 200
    assert r.url == server.url("/json")
    assert r.json_data == {"ok": True, "path": "/json"}
    assert "location" not in r.headers  # only the final response's headers
    assert len(r.get_all("content-type")) == 1
    assert [h.path for h in server.hits] == ["/redirect/3", "/redirect/2", "/redirect/1", "/json"]


def test_redirect_not_followed(backend: Backend, server: TestServer) -> None:
    url = server.url("/redirect/1")
    r = _get(backend, url, follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/json"
    assert r.url == url
    assert [h.path for h in server.hits] == ["/redirect/1"]


def test_redirect_307_keeps_method_and_body(backend: Backend, server: TestServer) -> None:
    r = _get(
        backend,
        server.url("/redirect-to"),
        method="POST",
        data=b"payload",
        params={"url": "/echo", "status": "307"},
    )
    echo = _echo(r)
    assert echo["method"] == "POST"
    assert echo["body"] == "payload"


def test_redirect_303_becomes_get(backend: Backend, server: TestServer) -> None:
    r = _get(
        backend,
        server.url("/redirect-to"),
        method="POST",
        data=b"payload",
        params={"url": "/echo", "status": "303"},
    )
    echo = _echo(r)
    assert echo["method"] == "GET"
    assert echo["body"] == ""


def test_max_redirects_exceeded(backend: Backend, backend_name: str, server: TestServer) -> None:
    err = _raises(backend, TooManyRedirectsError, server.url("/redirect/5"), max_redirects=2)
    _check_error(err, backend_name)
    assert "/json" not in [h.path for h in server.hits]


def test_max_redirects_is_the_number_of_hops_allowed(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/redirect/3"), max_redirects=3)
    assert r.status_code == 200
    assert r.url == server.url("/json")


# -- streaming ---------------------------------------------------------------------------


def test_stream_on_chunk(backend: Backend, server: TestServer) -> None:
    n = 300_000
    chunks: list[bytes] = []
    r = _get(backend, server.url(f"/bytes/{n}"), stream=True, on_chunk=chunks.append)
    assert r.status_code == 200
    assert r.content == b""
    assert all(isinstance(c, bytes) for c in chunks)
    assert b"".join(chunks) == bytes(i % 256 for i in range(n))
    assert r.headers["content-type"] == "application/octet-stream"


def test_stream_chunked_ndjson(backend: Backend, server: TestServer) -> None:
    chunks: list[bytes] = []
    r = _get(backend, server.url("/ndjson/50"), stream=True, on_chunk=chunks.append)
    assert r.content == b""
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"i": i} for i in range(50)]


def test_stream_without_on_chunk_keeps_body(backend: Backend, server: TestServer) -> None:
    r = _get(backend, server.url("/bytes/5000"), stream=True)
    assert r.content == bytes(i % 256 for i in range(5000))


# -- failures ----------------------------------------------------------------------------


def test_connection_refused(backend: Backend, backend_name: str, refused_url: str) -> None:
    err = _raises(backend, ConnectError, refused_url)
    assert isinstance(err, TransportError)
    _check_error(err, backend_name, cause=True)
    assert err.url is not None
    assert str(urlsplit(refused_url).port) in err.url


def test_total_timeout(backend: Backend, backend_name: str, server: TestServer) -> None:
    async def main() -> list[tuple[BaseException | None, float]]:
        out = []
        async with backend:
            for timeout in (0.3, Timeout(total=0.3)):
                start = time.monotonic()
                try:
                    await backend.request(
                        _cfg(backend, server.url("/slow?delay=2"), timeout=timeout)
                    )
                except BaseException as exc:
                    out.append((exc, time.monotonic() - start))
                else:
                    out.append((None, time.monotonic() - start))
        return out

    for err, elapsed in asyncio.run(main()):
        assert isinstance(err, RequestTimeoutError), repr(err)
        assert isinstance(err, TimeoutError)
        _check_error(err, backend_name)
        assert not isinstance(err, _NOT_SENT), "the request was sent: not a connect failure"
        assert elapsed < 1.5, "the limit was not enforced: the request waited for the server"


def test_read_timeout(backend: Backend, backend_name: str, server: TestServer) -> None:
    # The first byte comes at once, then nothing for 2 s: only a read limit can stop it.
    err = _raises(
        backend,
        RequestTimeoutError,
        server.url("/drip?chunks=3&interval=2"),
        timeout=Timeout(read=0.3),
    )
    _check_error(err, backend_name)
    assert not isinstance(err, _NOT_SENT), repr(err)


def test_read_timeout_is_not_a_total_timeout(backend: Backend, server: TestServer) -> None:
    # 6 bytes 0.25 s apart: 1.5 s in all, but never 1 s without data.
    r = _get(backend, server.url("/drip?chunks=6&interval=0.25"), timeout=Timeout(read=1.0))
    assert r.content == b"x" * 6


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    faults = FaultServer()
    yield faults
    faults.stop()


@pytest.mark.parametrize("path", ["/truncated", "/truncated-chunked", "/garbage"])
def test_malformed_response_is_protocol_error(
    backend: Backend, backend_name: str, fault_server: FaultServer, path: str
) -> None:
    err = _raises(backend, ProtocolError, fault_server.url + path)
    _check_error(err, backend_name)


def test_empty_reply_is_not_a_connect_error(
    backend: Backend, backend_name: str, fault_server: FaultServer
) -> None:
    # The connection was made and the POST written: it may have been processed, so this must
    # not look like "never sent" (ConnectError), which the retry policy retries for any method.
    err = _raises(backend, ProtocolError, fault_server.url + "/empty", method="POST", data=b"x")
    assert not isinstance(err, _NOT_SENT), repr(err)
    _check_error(err, backend_name)


def test_body_delimited_by_close(backend: Backend, fault_server: FaultServer) -> None:
    r = _get(backend, fault_server.url + "/until-close")
    assert r.status_code == 200
    assert r.content == b"body-until-close"


# -- TLS ---------------------------------------------------------------------------------


def test_tls_self_signed_refused_by_default(
    backend: Backend, backend_name: str, tls_server: TestServer
) -> None:
    err = _raises(backend, TLSError, tls_server.url("/json"))
    assert isinstance(err, TransportError)
    _check_error(err, backend_name, cause=True)
    assert tls_server.hits == []


def test_tls_verify_false(backend: Backend, tls_server: TestServer) -> None:
    r = _get(backend, tls_server.url("/json"), verify_ssl=False)
    assert r.status_code == 200
    assert r.json_data == {"ok": True, "path": "/json"}


def test_tls_verify_false_does_not_leak(backend: Backend, tls_server: TestServer) -> None:
    """verify_ssl=False on one request must not let a later verifying request through."""
    url = tls_server.url("/json")

    async def main() -> list[object]:
        out: list[object] = []
        async with backend:  # one instance, one loop: pooled connections are reused
            for verify in (False, True, False, True):
                try:
                    r = await backend.request(_cfg(backend, url, verify_ssl=verify))
                except FastRequestsError as exc:
                    out.append(type(exc))
                else:
                    out.append(r.status_code)
        return out

    assert asyncio.run(main()) == [200, TLSError, 200, TLSError]


# -- proxy -------------------------------------------------------------------------------


def test_http_through_proxy(
    backend: Backend, server: TestServer, proxy_server: ProxyServer
) -> None:
    url = server.url("/json")
    r = _get(backend, url, proxy=proxy_server.url)
    assert r.status_code == 200
    assert r.json_data == {"ok": True, "path": "/json"}
    assert proxy_server.targets() == [url]
    assert proxy_server.records[0].method == "GET"
    assert [h.path for h in server.hits] == ["/json"]


def _check_proxy_auth(proxy: ProxyServer, origin: TestServer, user: str, password: str) -> None:
    assert proxy.records, "nothing went through the proxy"
    assert all(rec.authorized for rec in proxy.records)
    assert proxy.records[-1].headers["proxy-authorization"] == basic_auth_header(user, password)
    assert origin.hits, "the origin saw nothing"
    for hit in origin.hits:
        assert "proxy-authorization" not in hit.headers
        assert "authorization" not in hit.headers


def test_proxy_credentials_reach_proxy_not_origin(
    backend: Backend, server: TestServer, proxy_server: ProxyServer
) -> None:
    proxy_server.require_auth("alice", "s3cret")
    r = _get(backend, server.url("/echo"), proxy=proxy_server.url_with_auth("alice", "s3cret"))
    assert r.status_code == 200
    assert "proxy-authorization" not in _echo(r)["headers"]
    _check_proxy_auth(proxy_server, server, "alice", "s3cret")


def test_proxy_credentials_percent_decoded(
    backend: Backend, server: TestServer, proxy_server: ProxyServer
) -> None:
    # ASCII only: for other characters the Basic charset differs between libraries (latin-1
    # in aiohttp and requests, UTF-8 in httpx and curl) and no standard settles it.
    user, password = "bob@corp", "p@ss:w%rd/ +x"
    proxy_server.require_auth(user, password)
    r = _get(backend, server.url("/json"), proxy=proxy_server.url_with_auth(user, password))
    assert r.status_code == 200
    _check_proxy_auth(proxy_server, server, user, password)


def test_proxy_wrong_credentials_never_reach_origin(
    backend: Backend, server: TestServer, proxy_server: ProxyServer
) -> None:
    proxy_server.require_auth("alice", "s3cret")
    url = proxy_server.url_with_auth("alice", "wrong")

    async def main() -> object:
        async with backend:
            try:
                return await backend.request(_cfg(backend, server.url("/json"), proxy=url))
            except FastRequestsError as exc:
                return exc

    outcome = asyncio.run(main())
    # For a forwarded http:// request the proxy's 407 is an HTTP answer; a ProxyError is
    # fine too. Never a silent success and never a direct connection to the origin.
    if isinstance(outcome, NormalizedResponse):
        assert outcome.status_code == 407
    else:
        assert isinstance(outcome, ProxyError), repr(outcome)
    assert proxy_server.records
    assert server.hits == []


def test_https_through_proxy_connect(
    backend: Backend, tls_server: TestServer, proxy_server: ProxyServer
) -> None:
    proxy_server.require_auth("carol", "t0psecret")
    r = _get(
        backend,
        tls_server.url("/echo"),
        verify_ssl=False,
        proxy=proxy_server.url_with_auth("carol", "t0psecret"),
    )
    assert r.status_code == 200
    assert "proxy-authorization" not in _echo(r)["headers"]
    assert [rec.method for rec in proxy_server.records] == ["CONNECT"]
    assert proxy_server.targets() == [urlsplit(tls_server.base).netloc]
    _check_proxy_auth(proxy_server, tls_server, "carol", "t0psecret")


def test_https_proxy_refusing_credentials_is_proxy_error(
    backend: Backend, backend_name: str, tls_server: TestServer, proxy_server: ProxyServer
) -> None:
    proxy_server.require_auth("carol", "t0psecret")
    err = _raises(
        backend,
        ProxyError,
        tls_server.url("/json"),
        verify_ssl=False,
        proxy=proxy_server.url_with_auth("carol", "nope"),
    )
    _check_error(err, backend_name)
    assert [rec.method for rec in proxy_server.records] == ["CONNECT"]
    assert tls_server.hits == []


def test_unreachable_proxy_is_proxy_error_not_direct(
    backend: Backend, backend_name: str, server: TestServer
) -> None:
    err = _raises(
        backend, ProxyError, server.url("/json"), proxy=f"http://127.0.0.1:{closed_port()}"
    )
    _check_error(err, backend_name)
    assert server.hits == []


# -- HTTP/2 ------------------------------------------------------------------------------


def test_http2_is_a_preference(backend: Backend, tls_server: TestServer) -> None:
    """http2=True (the default everywhere) is a preference: a backend with HTTP/2 negotiates it
    when the server offers it, one without says so through supports_http2() and quietly
    speaks HTTP/1.1 (no warning: it would fire on every default client)."""
    config = RequestConfig(tls_server.url("/json"), http2=True, verify_ssl=False, timeout=LIMIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (r,) = _run(backend, config)
    assert r.status_code == 200
    if not backend.supports_http2():
        assert r.http_version in (None, "HTTP/1.1", "HTTP/1.0")


# -- lifecycle ---------------------------------------------------------------------------


def test_sync_use_without_a_loop(backend: Backend, server: TestServer) -> None:
    with backend:
        first = backend.request_sync(_cfg(backend, server.url("/json/1")))
        second = backend.request_sync(_cfg(backend, server.url("/json/2")))
    assert (first.json_data, second.json_data) == ({"n": 1}, {"n": 2})


def test_reusable_after_close(backend: Backend, server: TestServer) -> None:
    async def main() -> list[int]:
        codes = []
        for _ in range(3):
            r = await backend.request(_cfg(backend, server.url("/json")))
            codes.append(r.status_code)
            await backend.close()
        return codes

    assert asyncio.run(main()) == [200, 200, 200]


def test_reusable_in_a_new_loop_after_close(backend: Backend, server: TestServer) -> None:
    # fastreq() run twice with the same backend instance: one asyncio.run() each.
    assert _get(backend, server.url("/json")).status_code == 200
    assert _get(backend, server.url("/json")).status_code == 200


def test_200_concurrent_requests(backend: Backend, server: TestServer) -> None:
    n = 200

    async def main() -> list[NormalizedResponse]:
        async with backend:
            return await asyncio.gather(
                *(backend.request(_cfg(backend, server.url(f"/json/{i}"))) for i in range(n))
            )

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * n
    assert [r.json_data for r in responses] == [{"n": i} for i in range(n)]
    assert len(server.hits) == n


def test_requests_overlap(backend: Backend, server: TestServer) -> None:
    # Not a speed test: a backend must not serialize concurrent requests.
    async def main() -> list[NormalizedResponse]:
        async with backend:
            return await asyncio.gather(
                *(backend.request(_cfg(backend, server.url("/slow?delay=0.3"))) for _ in range(8))
            )

    assert [r.status_code for r in asyncio.run(main())] == [200] * 8
    assert server.max_in_flight >= 2


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_fast_request_not_queued_behind_slow_one(
    backend: Backend, server: TestServer, tls_server: TestServer, scheme: str
) -> None:
    """A quick request sent alongside a slow one to the same host finishes first, both on a
    fresh backend (no connection known yet) and on a warm one. Not a speed test: the slow
    one takes 0.5 s, the quick one nothing; only head-of-line blocking can reverse the order."""
    origin = server if scheme == "http" else tls_server
    options: dict[str, Any] = {} if scheme == "http" else {"verify_ssl": False}

    async def main() -> list[bool]:
        slow_pending_when_fast_done = []
        async with backend:
            for _ in range(2):  # cold, then warm
                slow = asyncio.create_task(
                    backend.request(_cfg(backend, origin.url("/slow?delay=0.5"), **options))
                )
                fast = asyncio.create_task(
                    backend.request(_cfg(backend, origin.url("/json"), **options))
                )
                assert (await fast).status_code == 200
                slow_pending_when_fast_done.append(not slow.done())
                assert (await slow).status_code == 200
        return slow_pending_when_fast_done

    assert asyncio.run(main()) == [True, True], "[cold, warm]: False = queued behind the slow one"


def test_options_do_not_leak_between_requests(
    backend: Backend, server: TestServer, proxy_server: ProxyServer
) -> None:
    """One instance, one loop, requests one after another: each gets only its own options
    (backends that reuse handles or sessions must reset method, body, headers, cookies,
    proxy, redirect policy, streaming)."""
    echo = server.url("/echo")
    plain = _cfg(backend, echo)
    seq = [
        _cfg(backend, echo, method="HEAD"),
        plain,
        _cfg(
            backend,
            echo,
            method="POST",
            data=b"abc",
            headers={"X-Leak": "1"},
            cookies={"c": "1"},
            params={"p": "1"},
        ),
        plain,
        _cfg(backend, echo, method="PUT", json={"j": 1}),
        plain,
        _cfg(backend, echo, proxy=proxy_server.url),
        plain,
        _cfg(backend, echo, stream=True, on_chunk=lambda chunk: None),
        plain,
        _cfg(backend, server.url("/redirect/1"), follow_redirects=False),
        _cfg(backend, server.url("/redirect/1")),
        _cfg(backend, server.url("/redirect/1"), max_redirects=1),
        _cfg(backend, server.url("/redirect/3")),
    ]
    responses = _run(backend, *seq)
    for index in (1, 3, 5, 7, 9):
        got = _echo(responses[index])
        assert got["method"] == "GET", index
        assert got["body"] == "", index
        assert got["query"] == [], index
        for header in ("x-leak", "cookie", "content-type"):
            assert header not in got["headers"], (index, header)
    assert responses[8].content == b""
    assert len(proxy_server.records) == 1
    assert [r.status_code for r in responses[10:]] == [302, 200, 200, 200]


def test_concurrent_requests_keep_their_own_options(backend: Backend, server: TestServer) -> None:
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    def config(i: int) -> RequestConfig:
        method = methods[i % len(methods)]
        body = f"body-{i}".encode() if method in ("POST", "PUT", "PATCH") else None
        return _cfg(
            backend,
            server.url("/echo"),
            method=method,
            data=body,
            headers={"X-Id": str(i)},
            params={"i": i},
            cookies={"id": str(i)},
        )

    async def main() -> list[NormalizedResponse]:
        async with backend:
            return await asyncio.gather(*(backend.request(config(i)) for i in range(50)))

    for i, r in enumerate(asyncio.run(main())):
        got = _echo(r)
        method = methods[i % len(methods)]
        assert got["method"] == method
        assert got["headers"]["x-id"] == str(i)
        assert got["query"] == [["i", str(i)]]
        assert got["cookies"] == {"id": str(i)}
        assert got["body"] == (f"body-{i}" if method in ("POST", "PUT", "PATCH") else "")


def test_cancellation_leaves_backend_usable(backend: Backend, server: TestServer) -> None:
    async def main() -> tuple[BaseException | None, BaseException | None, int, int]:
        waited: BaseException | None = None
        cancelled: BaseException | None = None
        async with backend:
            slow = _cfg(backend, server.url("/slow?delay=2"))
            try:
                await asyncio.wait_for(backend.request(slow), 0.2)
            except BaseException as exc:
                waited = exc
            task = asyncio.create_task(backend.request(slow))
            await asyncio.sleep(0.2)
            task.cancel()
            try:
                await task
            except BaseException as exc:
                cancelled = exc
            after = await backend.request(_cfg(backend, server.url("/json")))
            later = await backend.request(_cfg(backend, server.url("/slow?delay=0.05")))
            return waited, cancelled, after.status_code, later.status_code

    waited, cancelled, after, later = asyncio.run(main())
    # wait_for's own timeout, not a backend error: cancellation is not mapped.
    assert type(waited) in (asyncio.TimeoutError, TimeoutError), repr(waited)
    assert type(cancelled) is asyncio.CancelledError, repr(cancelled)
    assert (after, later) == (200, 200)
