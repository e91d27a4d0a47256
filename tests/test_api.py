"""The public API end to end, over every backend, against the local recording server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import fastreq
from fastreq import (
    ConnectError,
    FailureDetails,
    FastRequests,
    NormalizedResponse,
    ParseFuncError,
    PartialFailureError,
    Request,
    RequestTimeoutError,
    RetryConfig,
    RetryExhaustedError,
    ReturnType,
    fastreq_async,
)

from ._server import TestServer

FAST_RETRY = RetryConfig(max_retries=3, backoff_base=0.001, max_delay=0.01)


def test_single_url_returns_one_result(server: TestServer, backend_name: str) -> None:
    assert fastreq.fastreq(server.url("/json"), backend=backend_name) == {
        "ok": True, "path": "/json"
    }


def test_list_keeps_input_order(server: TestServer, backend_name: str) -> None:
    urls = [server.url(f"/json/{i}") for i in range(60)]
    out = fastreq.fastreq(urls, backend=backend_name, concurrency=16)
    assert out == [{"n": i} for i in range(60)]
    assert len(server.hits_for("/json/")) == 60


def test_generator_input_and_duplicates(server: TestServer, backend_name: str) -> None:
    gen = (server.url(f"/json/{i % 3}") for i in range(9))
    out = fastreq.fastreq(gen, backend=backend_name)
    assert out == [{"n": i % 3} for i in range(9)]
    assert len(server.hits) == 9  # duplicates are each fetched


def test_keys_give_a_dict(server: TestServer, backend_name: str) -> None:
    urls = [server.url(f"/json/{i}") for i in range(5)]
    out = fastreq.fastreq(urls, backend=backend_name, keys=list("abcde"))
    assert out == {k: {"n": i} for i, k in enumerate("abcde")}


@pytest.mark.parametrize(
    ("path", "return_type", "expected"),
    [
        ("/json", "json", {"ok": True, "path": "/json"}),
        ("/problem", "json", {"title": "nope"}),
        ("/text", "json", "hello"),
        ("/text", "text", "hello"),
        ("/latin1", "text", "café"),
        ("/bytes/5", "content", bytes(range(5))),
        ("/json", ReturnType.TEXT, '{"ok": true, "path": "/json"}'),
    ],
)
def test_return_types(
    server: TestServer, backend_name: str, path: str, return_type: Any, expected: Any
) -> None:
    out = fastreq.fastreq(server.url(path), backend=backend_name, return_type=return_type)
    assert out == expected


def test_return_type_response(server: TestServer, backend_name: str) -> None:
    resp = fastreq.fastreq(server.url("/json"), backend=backend_name, return_type="response")
    assert isinstance(resp, NormalizedResponse)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json_data == {"ok": True, "path": "/json"}


def test_4xx_is_a_result_not_a_failure(server: TestServer, backend_name: str) -> None:
    out = fastreq.fastreq(
        [server.url("/status/404"), server.url("/status/418")],
        backend=backend_name, return_type="response",
    )
    assert [r.status_code for r in out] == [404, 418]


def test_parse_func_failure_is_isolated(server: TestServer, backend_name: str) -> None:
    def parse(value: dict[str, int]) -> int:
        if value["n"] == 2:
            raise KeyError("boom")
        return value["n"] * 10

    urls = [server.url(f"/json/{i}") for i in range(4)]
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(urls, backend=backend_name, parse_func=parse)
    exc = info.value
    assert exc.results == [0, 10, None, 30]
    assert exc.total == 4 and exc.successes == 3
    [failure] = exc.failures
    assert isinstance(failure, FailureDetails)
    assert failure.index == 2 and failure.url == urls[2]
    assert isinstance(failure.error, ParseFuncError)
    assert isinstance(failure.error.__cause__, KeyError)


def test_partial_failure_keeps_successes(
    server: TestServer, backend_name: str, refused_url: str
) -> None:
    urls = [server.url("/json/1"), refused_url, server.url("/json/3"), refused_url]
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(urls, backend=backend_name, max_retries=0, keys=["a", "b", "c", "d"])
    exc = info.value
    assert exc.results == {"a": {"n": 1}, "b": None, "c": {"n": 3}, "d": None}
    assert [(f.index, f.key) for f in exc.failures] == [(1, "b"), (3, "d")]
    assert all(isinstance(f.error, ConnectError) for f in exc.failures)
    assert all(f.attempts == 1 for f in exc.failures)


def test_return_none_on_failure(
    server: TestServer, backend_name: str, refused_url: str
) -> None:
    out = fastreq.fastreq(
        [refused_url, server.url("/json/2")], backend=backend_name, max_retries=0,
        return_none_on_failure=True, verbose=False,
    )
    assert out == [None, {"n": 2}]


def test_connection_refused_is_retried(backend_name: str, refused_url: str) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(refused_url, backend=backend_name, max_retries=2, sleep=fake_sleep)
    [failure] = info.value.failures
    assert failure.attempts == 3
    assert isinstance(failure.error, ConnectError)
    assert len(delays) == 2 and delays[0] <= delays[1] * 2  # exponential-ish, jittered


def test_retries_on_503_then_success(server: TestServer, backend_name: str) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    out = fastreq.fastreq(
        server.url("/flaky/a/2"), backend=backend_name, sleep=fake_sleep,
        return_type="response",
    )
    assert out.status_code == 200
    assert out.json() == {"hits": 3}
    assert len(delays) == 2


def test_retries_exhausted_on_503_keep_the_last_response(
    server: TestServer, backend_name: str
) -> None:
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/flaky/b/10"), backend=backend_name, retry=FAST_RETRY)
    [failure] = info.value.failures
    assert isinstance(failure.error, RetryExhaustedError)
    assert failure.attempts == 4 == failure.error.attempts
    assert failure.response is not None and failure.response.status_code == 503
    assert server.flaky_counts["b"] == 4


def test_post_is_not_retried_by_default(server: TestServer, backend_name: str) -> None:
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/flaky/c/1"), method="POST", json={"x": 1},
                        backend=backend_name, retry=FAST_RETRY)
    assert info.value.failures[0].attempts == 1
    assert server.flaky_counts["c"] == 1


def test_timeout_fails_only_that_input(server: TestServer, backend_name: str) -> None:
    urls = [server.url("/slow?delay=3"), server.url("/json/1")]
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(urls, backend=backend_name, timeout=0.3, max_retries=0)
    assert info.value.results == [None, {"n": 1}]
    assert isinstance(info.value.failures[0].error, RequestTimeoutError)


def test_redirects_followed_and_not(server: TestServer, backend_name: str) -> None:
    followed = fastreq.fastreq(server.url("/redirect/2"), backend=backend_name,
                               return_type="response")
    assert followed.status_code == 200
    assert followed.url == server.url("/json")
    not_followed = fastreq.fastreq(server.url("/redirect/2"), backend=backend_name,
                                   follow_redirects=False, return_type="response")
    assert not_followed.status_code == 302
    assert not_followed.headers["location"] == "/redirect/1"


def test_cookies_and_headers_sent(server: TestServer, backend_name: str) -> None:
    client_headers = {"X-Client": "c"}
    out = fastreq.fastreq(
        server.url("/echo"), backend=backend_name, cookies={"session": "abc"},
        headers=client_headers, random_user_agent=False,
    )
    assert out["cookies"] == {"session": "abc"}
    assert out["headers"]["x-client"] == "c"
    assert client_headers == {"X-Client": "c"}


def test_random_user_agent_rotates(server: TestServer, backend_name: str) -> None:
    fastreq.fastreq([server.url("/echo")] * 20, backend=backend_name)
    agents = {hit.headers.get("user-agent", "") for hit in server.hits}
    assert len(agents) > 1
    assert all(agent.startswith("Mozilla/5.0") for agent in agents)


def test_params_data_and_json_bodies(server: TestServer, backend_name: str) -> None:
    urls = [server.url("/echo")] * 3
    reqs = [
        Request(urls[0], params={"q": "x y", "tags": ["a", "b"]}),
        Request(urls[1], method="POST", data={"field": "v"}),
        Request(urls[2], method="PUT", json={"k": [1, 2]}),
    ]
    get, form, js = fastreq.fastreq(reqs, backend=backend_name)
    assert get["method"] == "GET"
    assert get["query"] == [["q", "x y"], ["tags", "a"], ["tags", "b"]]
    assert form["method"] == "POST" and form["body"] == "field=v"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert js["method"] == "PUT" and json.loads(js["body"]) == {"k": [1, 2]}
    assert js["headers"]["content-type"] == "application/json"


def test_batch_options_apply_to_every_input(server: TestServer, backend_name: str) -> None:
    out = fastreq.fastreq(
        [server.url("/echo"), Request(server.url("/echo"), headers={"X-Own": "1"})],
        backend=backend_name, method="PATCH", data=b"raw", headers={"X-Batch": "b"},
    )
    assert [o["method"] for o in out] == ["PATCH", "PATCH"]
    assert [o["body"] for o in out] == ["raw", "raw"]
    assert out[1]["headers"]["x-own"] == "1" and out[1]["headers"]["x-batch"] == "b"


def test_client_reuse_and_async_api(server: TestServer, backend_name: str) -> None:
    async def main() -> tuple[Any, Any, Any]:
        async with FastRequests(backend=backend_name, concurrency=4) as client:
            first = await client.request([server.url("/json/1"), server.url("/json/2")])
            second = await client.request(server.url("/text"), return_type="text")
        third = await fastreq_async(server.url("/json/3"), backend=backend_name)
        return first, second, third

    assert asyncio.run(main()) == ([{"n": 1}, {"n": 2}], "hello", {"n": 3})


def test_sync_api_inside_a_running_loop(server: TestServer, backend_name: str) -> None:
    async def notebook_cell() -> Any:
        return fastreq.fastreq(server.url("/json/7"), backend=backend_name)

    assert asyncio.run(notebook_cell()) == {"n": 7}


def test_concurrency_bounds_requests_in_flight(server: TestServer, backend_name: str) -> None:
    fastreq.fastreq([server.url("/slow?delay=0.05")] * 24, backend=backend_name, concurrency=4)
    assert len(server.hits) == 24
    assert server.max_in_flight <= 4
