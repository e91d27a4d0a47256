"""Security properties every backend must show: redirects, TLS, injection, proxies, cookies.

Each test runs once per installed backend against local servers only (the aiohttp test
server, its HTTPS twin, the recording proxy and the raw-socket fault server). Known gaps of
backends that cannot be fixed here are ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fastreq import FastRequests, PartialFailureError, Request, fastreq
from fastreq.backends import create_backend
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    FastRequestsError,
    TLSError,
    TooManyRedirectsError,
    ValidationError,
)
from fastreq.utils.proxies import bypasses_proxy

from ._faults import FaultRecord, FaultServer, run_configs, run_one
from ._proxy import ProxyServer
from ._server import TestServer

LIMIT = 10.0
SECRETS = {
    "Authorization": "Bearer top-secret",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    "Cookie": "session=s3cr3t",
}


def _run(backend_name: str, *configs: RequestConfig) -> list[NormalizedResponse | BaseException]:
    return run_configs(backend_name, *configs)


def _one(backend_name: str, url: str, **options: Any) -> NormalizedResponse | BaseException:
    return run_one(backend_name, url, LIMIT, **options)


def _echoed(faults: FaultServer) -> FaultRecord:
    hits = [r for r in faults.records if r.path == "/echo"]
    assert len(hits) == 1, faults.paths()
    return hits[0]


# -- redirects -----------------------------------------------------------------------------


def test_redirect_loop_is_an_error(backend_name: str, faults: FaultServer) -> None:
    out = _one(backend_name, faults.url + "/loop", max_redirects=5)
    assert isinstance(out, TooManyRedirectsError), repr(out)
    assert faults.paths().count("/loop") <= 6


def test_more_than_max_redirects_is_an_error(backend_name: str, server: TestServer) -> None:
    ok, too_many = _run(
        backend_name,
        RequestConfig(server.url("/redirect/3"), max_redirects=3, timeout=LIMIT),
        RequestConfig(server.url("/redirect/4"), max_redirects=3, timeout=LIMIT),
    )
    assert isinstance(ok, NormalizedResponse) and ok.status_code == 200
    assert isinstance(too_many, TooManyRedirectsError), repr(too_many)


def _assert_stripped(headers: dict[str, str]) -> None:
    for name in ("authorization", "proxy-authorization", "cookie"):
        assert name not in headers, (name, headers.get(name))


def test_credentials_stripped_when_redirect_changes_host(
    backend_name: str, faults: FaultServer
) -> None:
    target = f"http://localhost:{faults.port}/echo"
    out = _one(backend_name, faults.url + f"/redirect?to={target}", headers=dict(SECRETS),
               cookies={"c": "2"})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    _assert_stripped(_echoed(faults).headers)


def test_credentials_stripped_when_redirect_changes_port(
    backend_name: str, faults: FaultServer, server: TestServer
) -> None:
    target = server.url("/echo")
    out = _one(backend_name, faults.url + f"/redirect?to={target}", headers=dict(SECRETS),
               cookies={"c": "2"})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    hits = server.hits_for("/echo")
    assert len(hits) == 1
    _assert_stripped(hits[0].headers)


def test_credentials_stripped_on_https_to_http_downgrade(
    backend_name: str, faults: FaultServer, tls_server: TestServer
) -> None:
    url = tls_server.url(f"/redirect-to?url={faults.url}/echo&status=302")
    out = _one(backend_name, url, headers=dict(SECRETS), cookies={"c": "2"}, verify_ssl=False)
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    _assert_stripped(_echoed(faults).headers)


def test_credentials_kept_on_same_origin_redirect(backend_name: str, faults: FaultServer) -> None:
    out = _one(backend_name, faults.url + "/redirect?to=/echo",
               headers={"Authorization": "Bearer mine"})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert _echoed(faults).headers.get("authorization") == "Bearer mine"


def test_303_turns_post_into_get_without_body(
    backend_name: str, faults: FaultServer
) -> None:
    out = _one(backend_name, faults.url + "/redirect?to=/echo&status=303", method="POST",
               json={"pay": 1})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    echo = _echoed(faults)
    assert echo.method == "GET"
    assert echo.body == b""
    assert "content-type" not in echo.headers
    assert echo.headers.get("content-length", "0") == "0"


@pytest.mark.parametrize("status", [307, 308])
def test_307_308_keep_method_and_body(
    backend_name: str, faults: FaultServer, status: int
) -> None:
    out = _one(backend_name, faults.url + f"/redirect?to=/echo&status={status}", method="POST",
               data=b"the body")
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    echo = _echoed(faults)
    assert (echo.method, echo.body) == ("POST", b"the body")


# -- TLS -----------------------------------------------------------------------------------


def test_tls_verified_by_default(backend_name: str, tls_server: TestServer) -> None:
    out = _one(backend_name, tls_server.url("/json"))
    assert isinstance(out, TLSError), repr(out)
    assert tls_server.hits == []


def test_unverified_client_never_weakens_another(
    backend_name: str, tls_server: TestServer
) -> None:
    url = tls_server.url("/json")

    async def main() -> list[object]:
        async with create_backend(backend_name) as lax, create_backend(backend_name) as strict:
            out: list[object] = []
            for backend, verify in ((lax, False), (strict, True), (lax, False), (strict, True)):
                try:
                    r = await backend.request(RequestConfig(url, verify_ssl=verify, timeout=LIMIT))
                    out.append(r.status_code)
                except FastRequestsError as exc:
                    out.append(type(exc))
            return out

    assert asyncio.run(main()) == [200, TLSError, 200, TLSError]
    # and through the public API, one client after another
    assert fastreq(url, backend=backend_name, verify_ssl=False, timeout=LIMIT) == {
        "ok": True, "path": "/json"
    }
    with pytest.raises(PartialFailureError) as info:
        fastreq(url, backend=backend_name, max_retries=0, timeout=LIMIT)
    assert isinstance(info.value.failures[0].error, TLSError)


# -- injection -----------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("method CRLF", {"method": "GET /x HTTP/1.1\r\nInjected: 1\r\n"}),
    ("method NUL", {"method": "GE\x00T"}),
    ("header value CRLF", {"headers": {"X-A": "v\r\nInjected: 1"}}),
    ("header value LF", {"headers": {"X-A": "v\nInjected: 1"}}),
    ("header value NUL", {"headers": {"X-A": "v\x00"}}),
    ("header name CRLF", {"headers": {"X-A\r\nInjected": "1"}}),
    ("header name NUL", {"headers": {"X\x00A": "1"}}),
    ("cookie CRLF", {"cookies": {"a": "1\r\nInjected: 1"}}),
]


@pytest.mark.parametrize(("what", "options"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_injection_rejected_before_sending(
    backend_name: str, faults: FaultServer, what: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        fastreq(faults.url + "/echo", backend=backend_name, **options)
    if "cookies" not in options:  # the same inside a Request of a batch
        with pytest.raises(ValidationError):
            fastreq([Request(faults.url + "/echo", **options)], backend=backend_name)
    assert faults.records == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1\r\n.evil/",
        "http://127.0.0.1\x00.evil/",
        "http://exa\nmple.com/",
        "http://127.0.0.1:1/a\r\nInjected: 1",
        "http://127.0.0.1:1/?q=a\r\nInjected: 1",
        "http://127.0.0.1:1/a b",
    ],
)
def test_control_characters_in_url_rejected(backend_name: str, url: str) -> None:
    with pytest.raises(ValidationError):
        fastreq(url, backend=backend_name)


def test_pathological_url_fails_fast(backend_name: str) -> None:
    start = time.monotonic()
    for url in ("https://" + "@" * 10000, "http://" + "a" * 100000, "http://[" + ":" * 10000):
        with pytest.raises(ValidationError):
            fastreq(url, backend=backend_name)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"X-A": "v\r\nInjected: 1"}},
        {"headers": {"X-A": "v\nInjected: 1"}},
        {"method": "GET /echo HTTP/1.1\r\nInjected: 1\r\nX:"},
    ],
    ids=["value-crlf", "value-lf", "method-crlf"],
)
def test_backend_never_sends_an_injected_header(
    backend_name: str, faults: FaultServer,
    options: dict[str, Any],
) -> None:
    """A RequestConfig built by hand (a custom caller) still cannot inject a header."""
    out = _one(backend_name, faults.url + "/echo", **options)
    assert isinstance(out, (FastRequestsError, NormalizedResponse)), repr(out)
    for record in faults.records:
        assert "injected" not in record.headers, record.headers


# -- proxies -------------------------------------------------------------------------------


def test_proxy_credentials_never_reach_the_origin(
    backend_name: str, server: TestServer, proxy_server: ProxyServer
) -> None:
    proxy = proxy_server.url_with_auth("user", "pa:ss")
    out = fastreq(server.url("/echo"), backend=backend_name, proxies=[proxy], timeout=LIMIT)
    assert out["method"] == "GET"
    assert "proxy-authorization" not in out["headers"]
    assert all("pa:ss" not in v and "pa%3Ass" not in v for v in out["headers"].values())
    assert proxy_server.records and "proxy-authorization" in proxy_server.records[0].headers


@pytest.mark.parametrize(
    ("no_proxy", "via_proxy"),
    [("localhost", False), (".localhost", False), ("calhost", True), ("host", True),
     ("localhost.evil", True), ("*", False)],
)
def test_no_proxy_matches_on_domain_boundaries(
    backend_name: str, server: TestServer, proxy_server: ProxyServer,
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, via_proxy: bool,
) -> None:
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    url = server.url("/json").replace("127.0.0.1", "localhost")
    fastreq(url, backend=backend_name, proxies=[proxy_server.url], timeout=LIMIT)
    assert bool(proxy_server.records) is via_proxy, proxy_server.targets()


def test_no_proxy_unit_boundaries() -> None:
    assert bypasses_proxy("api.example.com", "example.com")
    assert bypasses_proxy("example.com", ".example.com")
    assert not bypasses_proxy("badexample.com", "example.com")
    assert not bypasses_proxy("example.com.evil.net", "example.com")
    assert not bypasses_proxy("10.0.0.12", "0.0.12")
    assert bypasses_proxy("10.1.2.3", "10.0.0.0/8")


# -- cookies -------------------------------------------------------------------------------


def test_cookies_of_one_host_never_sent_to_another(
    backend_name: str, server: TestServer
) -> None:
    other = server.url("/echo").replace("127.0.0.1", "localhost")

    async def main() -> tuple[Any, Any]:
        async with FastRequests(backend=backend_name, timeout=LIMIT) as client:
            await client.request(server.url("/set-cookies"))
            same = await client.request(server.url("/echo"))
            elsewhere = await client.request(other)
            return same, elsewhere

    same, elsewhere = asyncio.run(main())
    assert same["cookies"] == {"a": "1", "b": "2"}  # the jar works...
    assert elsewhere["cookies"] == {}  # ...per host
    assert "cookie" not in elsewhere["headers"]


def test_redirect_set_cookie_not_sent_to_another_host(
    backend_name: str, faults: FaultServer, server: TestServer
) -> None:
    # a redirect from 127.0.0.1 to localhost: cookies the caller gave are not carried over
    target = server.url("/echo").replace("127.0.0.1", "localhost")
    out = fastreq(faults.url + f"/redirect?to={target}", backend=backend_name,
                  cookies={"sid": "1"}, timeout=LIMIT)
    assert out["cookies"] == {}
