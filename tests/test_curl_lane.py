"""The curl fast lane (``fastreq._curl_lane``): the same observable results as the general
path, taken only when the batch allows it, and no thread left behind."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest

pytest.importorskip("pycurl")

from fastreq import (
    FastRequests,
    PartialFailureError,
    Request,
    RetryConfig,
    _curl_lane,
    fastreq_async,
)

from ._clock import FakeClock
from ._server import TestServer

N = _curl_lane.MIN_BATCH + 4


def _error_key(error: BaseException) -> tuple[str, str, Any]:
    text = re.sub(r"\d+ ms|\d+ milliseconds", "N ms", str(error))
    response = getattr(error, "last_response", None)
    return type(error).__name__, text, getattr(response, "status_code", None)


def _outcome(results: Any, failures: list[Any] | None) -> Any:
    def plain(value: Any) -> Any:
        if hasattr(value, "status_code"):  # a response
            return (value.status_code, value.content, value.url, dict(value.headers).get(
                "content-type"), value.http_version)
        return value

    shaped = {k: plain(v) for k, v in results.items()} if isinstance(results, dict) else [
        plain(v) for v in results
    ]
    fails = [(f.index, f.key, f.url, f.attempts, _error_key(f.error)) for f in failures or []]
    return shaped, fails


def _run(urls: Any, lane_on: bool, **options: Any) -> tuple[Any, int, FakeClock]:
    """``fastreq_async`` on a fake clock; (outcome, batches through the lane, clock)."""
    clock = FakeClock()
    options.setdefault("retry", RetryConfig(max_retries=2, jitter=0))
    options.setdefault("concurrency", 8)
    options.setdefault("backend", "curl")
    before = _curl_lane.stats["batches"]
    saved = _curl_lane.enabled
    _curl_lane.enabled = lane_on
    try:
        try:
            results = asyncio.run(fastreq_async(
                urls, sleep=clock.sleep, clock=clock, **options,
            ))
            outcome = _outcome(results, None)
        except PartialFailureError as exc:
            outcome = _outcome(exc.results, exc.failures)
    finally:
        _curl_lane.enabled = saved
    return outcome, _curl_lane.stats["batches"] - before, clock


def _same(urls: Any, **options: Any) -> Any:
    """Run through the lane and through the general path: same results, lane used once."""
    via_lane, used, lane_clock = _run(urls, True, **options)
    general, unused, general_clock = _run(urls, False, **options)
    assert used == 1 and unused == 0
    assert via_lane == general
    assert sorted(lane_clock.sleeps) == sorted(general_clock.sleeps)
    return via_lane


def test_json_in_order(server: TestServer) -> None:
    urls = [server.url(f"/json/{i}") for i in range(N)]
    (results, fails) = _same(urls)
    assert results == [{"n": i} for i in range(N)] and fails == []


@pytest.mark.parametrize("rtype", ["text", "content", "response", "json"])
def test_return_types(server: TestServer, rtype: str) -> None:
    paths = ["/json", "/text", "/latin1", "/problem", "/bytes/300", "/status/404",
             "/status/204"]
    urls = [server.url(paths[i % len(paths)]) for i in range(N)]
    _same(urls, return_type=rtype)


def test_keys_requests_params_and_head(server: TestServer) -> None:
    urls = [Request(server.url("/echo"), key=f"k{i}") for i in range(N)]
    (results, _) = _same(urls, params={"q": "1"}, parse_func=lambda d: d["query"],
                         headers={"X-Test": "yes"})
    assert results["k0"] == [["q", "1"]]
    (results, _) = _same([server.url("/json")] * N, method="HEAD")
    assert results == [""] * N


def test_retries_statuses_and_retry_after(server: TestServer) -> None:
    def urls(run: str) -> list[str]:
        return [
            server.url(f"/flaky/{run}{i}/{i % 3}?retry_after={i % 2}") if i % 4 else
            server.url("/status/500")
            for i in range(N)
        ]

    lane_out, used, lane_clock = _run(urls("lane"), True)
    general, _, general_clock = _run(urls("general"), False)
    assert used == 1
    assert lane_out[0] == general[0]
    assert lane_out[1] == general[1] and len(lane_out[1]) == 5  # the /status/500 ones
    assert all(f[3] == 3 and f[4][0] == "RetryExhaustedError" for f in lane_out[1])
    assert sorted(lane_clock.sleeps) == sorted(general_clock.sleeps)
    assert 1.0 in lane_clock.sleeps  # Retry-After honoured


def test_refused_and_timeouts(server: TestServer, refused_url: str) -> None:
    urls = [refused_url if i % 2 else server.url("/json") for i in range(N)]
    (_, fails) = _same(urls)
    assert len(fails) == N // 2 and {f[4][0] for f in fails} == {"ConnectError"}
    assert {f[3] for f in fails} == {3}
    urls = [server.url("/slow?delay=2") if i == 3 else server.url("/json") for i in range(N)]
    (_, fails) = _same(urls, timeout=0.3, retry=RetryConfig(max_retries=0))
    assert [f[0] for f in fails] == [3]


def test_parse_func_errors(server: TestServer) -> None:
    def parse(data: Any) -> Any:
        return data["n"] // (data["n"] % 3)

    (results, fails) = _same([server.url(f"/json/{i}") for i in range(N)], parse_func=parse)
    assert [f[4][0] for f in fails] == ["ParseFuncError"] * len(fails) and fails
    assert results[1] == 1


def _hits(server: TestServer) -> Counter[str]:
    return Counter(h.path + ("?" + urlencode(h.query) if h.query else "") for h in server.hits)


def _same_once(server: TestServer, urls: Any, **options: Any) -> tuple[Any, Counter[str]]:
    """:func:`_same`, and the server saw the same requests from both paths (each hop of each
    input exactly once when nothing is retried): ``(outcome, requests seen per path)``."""
    server.reset()
    via_lane, used, lane_clock = _run(urls, True, **options)
    lane_hits = _hits(server)
    server.reset()
    general, unused, general_clock = _run(urls, False, **options)
    assert used == 1 and unused == 0
    assert via_lane == general
    assert sorted(lane_clock.sleeps) == sorted(general_clock.sleeps)
    assert lane_hits == _hits(server)
    return via_lane, lane_hits


def test_redirects_and_encodings_are_handled_in_the_lane(server: TestServer) -> None:
    paths = ["/json", "/redirect/2", "/gzip", "/status/304",
             "/redirect-to?url=/json/5&status=303", "/redirect-to?url=http://[::1&status=302",
             "/redirect/9", "/redirect-to?url=/status/503&status=307"]
    urls = [server.url(paths[i % len(paths)]) for i in range(N)]
    before = _curl_lane.stats["redirects"]
    (results, fails), hits = _same_once(server, urls, max_redirects=3)
    assert _curl_lane.stats["redirects"] > before
    assert results[1] == {"ok": True, "path": "/json"} and results[2] == {"compressed": True}
    assert results[4] == {"n": 5}
    assert {f[0] % len(paths): f[4][0] for f in fails} == {
        5: "ProtocolError", 6: "TooManyRedirectsError", 7: "RetryExhaustedError"}
    inputs = Counter(paths[i % len(paths)] for i in range(N))
    # one request per hop and input: none sent twice; retries restart from the input's URL
    assert hits["/redirect/2"] == hits["/redirect/1"] == inputs["/redirect/2"]
    assert hits["/gzip"] == inputs["/gzip"] and hits["/json/5"] == inputs[paths[4]]
    assert hits["/redirect/9"] == hits["/redirect/6"] == inputs["/redirect/9"]
    assert hits["/redirect/5"] == 0
    assert hits["/status/503"] == 3 * inputs[paths[7]]


def test_response_type_after_redirects(server: TestServer) -> None:
    urls = [server.url("/redirect/2" if i % 2 else "/gzip") for i in range(N)]
    (results, _), _ = _same_once(server, urls, return_type="response")
    assert results[1][2] == server.url("/json") and results[0][2] == server.url("/gzip")
    (results, _), hits = _same_once(server, urls, follow_redirects=False,
                                    return_type="response")
    assert results[1][0] == 302 and hits["/redirect/1"] == 0


def test_credentials_dropped_on_a_change_of_origin(server: TestServer) -> None:
    other = server.url("/echo").replace("127.0.0.1", "localhost")
    urls = [server.url(f"/redirect-to?url={other}") if i % 2 else server.url("/echo")
            for i in range(N)]
    (results, _), hits = _same_once(server, urls, headers={"Authorization": "secret"},
                                    parse_func=lambda d: d["headers"].get("authorization"))
    assert results[0] == "secret" and results[1] is None and hits["/echo"] == N


def test_max_body_size_exactly(server: TestServer) -> None:
    paths = ["/bytes/300", "/gzip", "/bytes/30", "/json"]
    urls = [server.url(paths[i % len(paths)]) for i in range(N)]
    (results, fails), hits = _same_once(server, urls, max_body_size=30,
                                        return_type="content")
    assert {f[4][0] for f in fails} == {"ResponseDecodeError"}
    assert {f[0] % 4 for f in fails} == {0}  # 20 bytes decoded from /gzip: it fits
    assert len(results[2]) == 30
    assert sum(hits.values()) == N
    (_, fails), _ = _same_once(server, urls, max_body_size=10, retry=RetryConfig(max_retries=0))
    assert {f[0] % 4 for f in fails} == {0, 1, 2, 3}


def test_redirect_with_a_body_over_max_body_size(faults: Any) -> None:
    urls = [f"{faults.url}/redirect?to=/ok&body=5000" if i % 2 else f"{faults.url}/ok"
            for i in range(N)]
    faults.reset()
    lane, _, _ = _run(urls, True, max_body_size=100, return_type="text")
    lane_paths = Counter(faults.paths())
    faults.reset()
    general, _, _ = _run(urls, False, max_body_size=100, return_type="text")
    assert lane == general and lane[0] == ["ok"] * N
    assert lane_paths == Counter(faults.paths()) == {"/ok": N, "/redirect": N // 2}


def test_https_verified_with_the_backends_ca(tls_server: TestServer) -> None:
    from fastreq.backends.curl import CurlBackend

    ca = tls_server.ca_path  # type: ignore[attr-defined]
    paths = ["/json", "/gzip", "/redirect/2", "/status/404"]
    urls = [tls_server.url(paths[i % len(paths)]) for i in range(N)]
    outcomes = []
    for lane_on in (True, False):
        tls_server.reset()
        out, used, _ = _run(urls, lane_on, backend=CurlBackend(ca_bundle=ca),
                            return_type="response")
        outcomes.append((out, used, _hits(tls_server)))
    (lane, used, lane_hits), (general, unused, general_hits) = outcomes
    assert (used, unused) == (1, 0) and lane == general and lane_hits == general_hits
    assert lane[0][0][:2] == (200, b'{"ok": true, "path": "/json"}')
    assert lane_hits["/json"] == N // 2
    # not trusted: the same TLSError, or no error at all without verification
    (_, fails) = _same(urls, retry=RetryConfig(max_retries=0))
    assert {f[4][0] for f in fails} == {"TLSError"} and len(fails) == N
    (results, fails) = _same(urls, verify_ssl=False)
    assert fails == [] and results[0] == {"ok": True, "path": "/json"}


def test_cookies_set_by_a_server_are_sent_afterwards(server: TestServer) -> None:
    urls = [server.url("/set-cookies")] + [server.url("/echo")] * N
    (results, _) = _same(urls, concurrency=1, parse_func=lambda d: d.get("cookies", d))
    assert results[-1] == {"a": "1", "b": "2"}


@pytest.mark.parametrize("options", [
    {"rate_limit": 1000.0}, {"per_host_concurrency": 4}, {"circuit_breaker": True},
    {"method": "POST"}, {"proxies": ["http://127.0.0.1:9"], "when_proxies_exhausted": "fail"},
    {"progress_callback": print},
    {"return_type": "stream", "stream_callback": lambda chunk, i: None},
])
def test_not_taken_when_the_batch_needs_more(server: TestServer, options: dict[str, Any]
                                             ) -> None:
    before = _curl_lane.stats["batches"]
    options.setdefault("return_none_on_failure", True)
    asyncio.run(fastreq_async([server.url("/json")] * N, backend="curl", **options))
    assert _curl_lane.stats["batches"] == before


def test_not_taken_for_small_batches_or_other_backends(server: TestServer) -> None:
    before = _curl_lane.stats["batches"]
    asyncio.run(fastreq_async([server.url("/json")] * 3, backend="curl"))
    asyncio.run(fastreq_async([server.url("/json")] * N, backend="aiohttp"))
    assert _curl_lane.stats["batches"] == before


def test_cancel_stops_the_thread(server: TestServer) -> None:
    async def main() -> None:
        async with FastRequests(backend="curl", concurrency=4) as client:
            task = asyncio.ensure_future(client.request([server.url("/slow?delay=5")] * N))
            await asyncio.sleep(0.3)
            assert any(t.name == "fastreq-curl-lane" for t in threading.enumerate())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert not any(t.name == "fastreq-curl-lane" for t in threading.enumerate())


def test_client_reused_across_batches(server: TestServer) -> None:
    async def main() -> list[Any]:
        async with FastRequests(backend="curl", concurrency=4) as client:
            first = await client.request([server.url("/json/1")] * N)
            second = await client.request([server.url("/json/2")] * N)
            return [first[0], second[-1]]

    before = _curl_lane.stats["batches"]
    assert asyncio.run(main()) == [{"n": 1}, {"n": 2}]
    assert _curl_lane.stats["batches"] == before + 2
