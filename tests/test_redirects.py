"""The redirect policy of ``fastreq.backends._redirects``, and redirects through every backend.

The first part calls the pure functions directly (no server); the second runs the same
properties once per installed backend against the local test servers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fastreq.backends import create_backend
from fastreq.backends._redirects import (
    REDIRECT_CODES,
    RedirectChain,
    redirect_config,
    resolve_location,
    same_origin,
)
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    ProtocolError,
    RequestTimeoutError,
    TooManyRedirectsError,
    ValidationError,
)
from fastreq.timeouts import Timeout

from ._faults import FaultServer, run_one
from ._server import TestServer

BASE = "http://a.example/dir/page?x=1"
SECRETS = {"Authorization": "Bearer t", "cookie": "s=1", "Proxy-Authorization": "Basic p"}

# -- Location resolution -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/top", "http://a.example/top"),
        ("next", "http://a.example/dir/next"),
        ("../up?q=2", "http://a.example/up?q=2"),
        ("?y=2", "http://a.example/dir/page?y=2"),
        ("//b.example/x", "http://b.example/x"),
        ("https://b.example:8443/x", "https://b.example:8443/x"),
        ("  /padded  ", "http://a.example/padded"),
        ("/a b", "http://a.example/a%20b"),
        ("/straße?q=é", "http://a.example/stra%C3%9Fe?q=%C3%A9"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("", BASE),
    ],
)
def test_location_resolved_against_the_current_url(location: str, expected: str) -> None:
    assert resolve_location(BASE, location) == expected


@pytest.mark.parametrize(
    "location",
    ["ftp://a.example/f", "javascript:alert(1)", "file:///etc/passwd", "http://", "http:///x",
     "http://a.example:99999/", "http://a.example:0/", "data:text/html,hi", "http:x",
     "HTTP://"],
)
def test_location_that_is_not_an_http_url_is_refused(location: str) -> None:
    with pytest.raises(ValidationError):
        resolve_location(BASE, location)


def test_same_origin_compares_scheme_host_and_effective_port() -> None:
    assert same_origin("http://a.example/x", "http://A.EXAMPLE:80/y")
    assert same_origin("https://a.example/", "https://a.example:443/z")
    assert not same_origin("https://a.example/", "http://a.example/")
    assert not same_origin("http://a.example/", "http://a.example:8080/")
    assert not same_origin("http://a.example/", "http://b.example/")
    assert same_origin("http://bücher.example/", "http://xn--bcher-kva.example/")


# -- methods and bodies --------------------------------------------------------------------

_EXPECTED_METHOD = {
    301: {"GET": "GET", "POST": "GET", "HEAD": "HEAD", "PUT": "PUT"},
    302: {"GET": "GET", "POST": "GET", "HEAD": "HEAD", "PUT": "PUT"},
    303: {"GET": "GET", "POST": "GET", "HEAD": "HEAD", "PUT": "GET"},
    307: {"GET": "GET", "POST": "POST", "HEAD": "HEAD", "PUT": "PUT"},
    308: {"GET": "GET", "POST": "POST", "HEAD": "HEAD", "PUT": "PUT"},
}


@pytest.mark.parametrize("status", sorted(REDIRECT_CODES))
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "PUT"])
def test_method_and_body_per_status(status: int, method: str) -> None:
    sent = RequestConfig(
        BASE, method=method, json={"k": 1},
        headers={"Content-Type": "application/json", "content-length": "7",
                 "Transfer-Encoding": "chunked", "X-Keep": "1"},
    )
    hop = redirect_config(sent, BASE, status, "/next")
    expected = _EXPECTED_METHOD[status][method]
    assert hop.method == expected
    assert hop.url == "http://a.example/next"
    assert hop.headers is not None and hop.headers["X-Keep"] == "1"
    if expected == method:  # method kept: body and its headers too
        assert hop.json == {"k": 1}
        assert hop.headers == sent.headers
    else:
        assert (hop.json, hop.data) == (None, None)
        assert hop.headers == {"X-Keep": "1"}


def test_303_drops_a_form_body_and_lowercase_method() -> None:
    sent = RequestConfig(BASE, method="post", data={"a": "1"})
    hop = redirect_config(sent, BASE, 303, "/done")
    assert (hop.method, hop.data, hop.json) == ("GET", None, None)


def test_params_apply_to_the_first_hop_only() -> None:
    sent = RequestConfig("http://a.example/p", params={"q": "1"})
    hop = redirect_config(sent, "http://a.example/p?q=1", 302, "/other")
    assert hop.params is None
    assert hop.url == "http://a.example/other"


def test_the_caller_config_is_never_modified() -> None:
    headers = dict(SECRETS, **{"Content-Type": "text/plain"})
    sent = RequestConfig(BASE, method="POST", data=b"x", headers=headers, cookies={"c": "1"})
    redirect_config(sent, BASE, 302, "http://b.example/")
    assert sent.headers is headers and len(headers) == 4
    assert (sent.method, sent.data, sent.cookies) == ("POST", b"x", {"c": "1"})


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["http://b.example/x", "http://a.example:8080/x", "https://a.example/x"],
    ids=["host", "port", "scheme"],
)
def test_origin_change_strips_credentials(location: str) -> None:
    sent = RequestConfig(BASE, headers=dict(SECRETS, **{"X-Other": "kept"}),
                         cookies={"c": "1"})
    hop = redirect_config(sent, BASE, 302, location)
    assert hop.headers == {"X-Other": "kept"}
    assert hop.cookies is None


@pytest.mark.parametrize("location", ["/same", "http://A.example:80/same"])
def test_same_origin_keeps_credentials(location: str) -> None:
    sent = RequestConfig(BASE, headers=dict(SECRETS), cookies={"c": "1"})
    hop = redirect_config(sent, BASE, 302, location)
    assert hop.headers == SECRETS
    assert hop.cookies == {"c": "1"}


# -- the chain -----------------------------------------------------------------------------


def _redirect(url: str, location: str | None, status: int = 302,
              elapsed: float = 0.1) -> NormalizedResponse:
    headers = {"Location": location} if location is not None else {}
    return NormalizedResponse(status, headers, b"", url=url, elapsed=elapsed)


def _follow(first: RequestConfig, hops: int, **chain_options: Any) -> RedirectChain:
    chain = RedirectChain(first, "test", **chain_options)
    config = first
    for i in range(hops):
        hop = chain.next_config(config, _redirect(config.url, f"/hop{i}"))
        assert hop is not None
        config = hop
    return chain


@pytest.mark.parametrize("allowed", [0, 1, 3])
def test_max_redirects_is_the_number_of_hops_allowed(allowed: int) -> None:
    first = RequestConfig(BASE, max_redirects=allowed)
    chain = _follow(first, allowed)
    assert chain.hops == allowed
    with pytest.raises(TooManyRedirectsError) as info:
        chain.next_config(first, _redirect("http://a.example/last", "/again"))
    err = info.value
    assert err.backend_name == "test"
    assert err.url == BASE
    assert f"more than {allowed} redirects" in str(err)


def test_too_many_redirects_carries_the_given_code() -> None:
    first = RequestConfig(BASE, max_redirects=0)
    with pytest.raises(TooManyRedirectsError) as info:
        RedirectChain(first, "curl", too_many_code=47).next_config(first, _redirect(BASE, "/"))
    assert info.value.code == 47


def test_not_a_redirect_to_follow() -> None:
    config = RequestConfig(BASE)
    chain = RedirectChain(config, "test")
    assert chain.next_config(config, _redirect(BASE, None)) is None  # 3xx, no Location
    assert chain.next_config(config, _redirect(BASE, "/x", status=200)) is None
    assert chain.next_config(config, _redirect(BASE, "/x", status=304)) is None
    no_follow = RequestConfig(BASE, follow_redirects=False)
    assert chain.next_config(no_follow, _redirect(BASE, "/x")) is None
    assert chain.hops == 0


def test_invalid_location_is_a_protocol_error() -> None:
    config = RequestConfig(BASE)
    with pytest.raises(ProtocolError, match="redirect to an invalid URL") as info:
        RedirectChain(config, "test").next_config(config, _redirect(BASE, "gopher://x/"))
    assert info.value.backend_name == "test"


def test_total_timeout_covers_the_whole_chain() -> None:
    first = RequestConfig(BASE, timeout=Timeout(connect=1, total=0.35))
    chain = _follow(first, 2)  # 0.1 s per hop
    hop = chain.next_config(first, _redirect(BASE, "/third"))
    assert hop is not None
    assert isinstance(hop.timeout, Timeout) and hop.timeout.connect == 1
    assert hop.timeout.total == pytest.approx(0.05)
    with pytest.raises(RequestTimeoutError):
        chain.next_config(hop, _redirect(hop.url, "/fourth"))
    number = _follow(RequestConfig(BASE, timeout=5), 1)
    assert number.next_config(RequestConfig(BASE), _redirect(BASE, "/")) is not None
    final = number.finish(NormalizedResponse(200, elapsed=0.5))
    assert final.elapsed == pytest.approx(0.7)


def test_no_total_timeout_is_left_alone() -> None:
    first = RequestConfig(BASE, timeout=Timeout(connect=1, read=2))
    hop = _follow(first, 1).next_config(first, _redirect(BASE, "/x"))
    assert hop is not None and hop.timeout == Timeout(connect=1, read=2)


# -- every backend -------------------------------------------------------------------------


def test_streamed_redirect_delivers_only_the_final_body(
    backend_name: str, server: TestServer
) -> None:
    chunks: list[bytes] = []
    out = run_one(backend_name, server.url("/redirect/2"), stream=True, on_chunk=chunks.append)
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.url == server.url("/json")
    assert json.loads(b"".join(chunks)) == {"ok": True, "path": "/json"}  # no "302: Found"


def test_streamed_3xx_without_location_is_the_response(
    backend_name: str, server: TestServer
) -> None:
    chunks: list[bytes] = []
    out = run_one(backend_name, server.url("/status/308"), stream=True, on_chunk=chunks.append)
    assert isinstance(out, NormalizedResponse) and out.status_code == 308, repr(out)
    assert b"308" in b"".join(chunks)


@pytest.mark.parametrize("status", [301, 302])
def test_301_302_turn_post_into_get_without_body(
    backend_name: str, faults: FaultServer, status: int
) -> None:
    out = run_one(backend_name, faults.url + f"/redirect?to=/echo&status={status}",
                  method="POST", json={"pay": 1})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    hits = [r for r in faults.records if r.path == "/echo"]
    assert len(hits) == 1
    assert (hits[0].method, hits[0].body) == ("GET", b"")
    assert "content-type" not in hits[0].headers


def test_params_sent_to_the_first_hop_only(backend_name: str, server: TestServer) -> None:
    out = run_one(backend_name, server.url("/redirect-to"),
                  params={"url": "/echo?from=location", "status": "302"})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.json()["query"] == [["from", "location"]]
    assert out.url == server.url("/echo?from=location")


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/f", "http://"])
def test_redirect_to_an_invalid_url_is_an_error(
    backend_name: str, faults: FaultServer, location: str
) -> None:
    out = run_one(backend_name, faults.url + f"/redirect?to={location}")
    assert isinstance(out, ProtocolError), repr(out)  # every backend follows with _redirects
    assert out.backend_name == backend_name
    assert "redirect to an invalid URL" in str(out)


# -- the body of a followed redirect -------------------------------------------------------


def test_small_redirect_body_is_drained_and_its_connection_reused(
    backend_name: str, faults: FaultServer
) -> None:
    out = run_one(backend_name, faults.url + "/redirect?to=/ok&body=3000")
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.content == b"ok"
    first, final = faults.records
    assert final.path == "/ok"
    assert (final.conn, final.nth) == (first.conn, 2)  # same keep-alive connection


def test_compressed_redirect_body_is_never_decoded(
    backend_name: str, faults: FaultServer
) -> None:
    # decoded, it would be 200 MiB (over max_body_size): dropped raw, it is nothing
    out = run_one(backend_name, faults.url + "/redirect?to=/ok&bomb=gzip", max_body_size=1000)
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.content == b"ok"


def test_endless_redirect_body_is_not_read_to_its_end(
    backend_name: str, faults: FaultServer
) -> None:
    out = run_one(backend_name, faults.url + "/redirect-endless", limit=5.0)
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.content == b"ok"


def test_a_request_given_up_mid_redirect_sends_no_further_hop(
    backend_name: str, faults: FaultServer
) -> None:
    # Given up while its redirect body is still arriving (0.5 s of it), the request must
    # stop there: a worker thread carrying on would send the next hop to nobody, after the
    # caller (and its test) has moved on.
    async def main() -> bool:
        async with create_backend(backend_name) as backend:
            config = RequestConfig(faults.url + "/redirect?to=/ok&drip=10&interval=0.05",
                                   timeout=10.0)
            task = asyncio.create_task(backend.request(config))
            await asyncio.sleep(0.2)
            finished = task.done()
            task.cancel()
            if finished:  # the redirect body was dropped unread (aiohttp): all done already
                assert isinstance(task.result(), NormalizedResponse), repr(task.result())
            else:
                with pytest.raises(asyncio.CancelledError):
                    await task
        await asyncio.sleep(0.8)  # past the redirect body's end, when /ok would be sent
        return finished

    finished = asyncio.run(main())
    assert faults.paths() == (["/redirect", "/ok"] if finished else ["/redirect"])


def test_utf8_location_is_percent_encoded(backend_name: str, server: TestServer) -> None:
    # the Location header goes out as UTF-8 bytes, which http.client reads as latin-1
    out = run_one(backend_name, server.url("/redirect-to"), params={"url": "/echo?q=straße"})
    assert isinstance(out, NormalizedResponse) and out.status_code == 200, repr(out)
    assert out.json()["query"] == [["q", "straße"]]
