"""fastreq.testing (MockBackend, FakeBackend) and custom Backend subclasses."""

from __future__ import annotations

import asyncio
import re

import pytest

import fastreq
from fastreq import (
    Backend,
    BackendError,
    ConnectError,
    NormalizedResponse,
    PartialFailureError,
    RequestConfig,
    RetryConfig,
)
from fastreq.testing import FakeBackend, MockBackend, make_response

NO_WAIT = RetryConfig(backoff_base=0, jitter=0)


class EchoBackend(Backend):
    """A user's own backend: answers with the URL it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    @property
    def name(self) -> str:
        return "echo"

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        await asyncio.sleep(0)
        return NormalizedResponse.from_backend(
            200, {"Content-Type": "text/plain"}, config.url.encode(), config.url
        )

    async def close(self) -> None:
        self.closed += 1


def test_custom_backend_instance() -> None:
    backend = EchoBackend()
    assert fastreq.fastreq(["http://a/", "http://b/"], backend=backend) == ["http://a/", "http://b/"]
    assert backend.closed == 1


def test_custom_backend_breaking_the_contract_is_one_failure() -> None:
    def handler(config: RequestConfig) -> NormalizedResponse:
        if config.url.endswith("/bad"):
            raise RuntimeError("bug in handler")
        return make_response(json={"ok": 1})

    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(["http://x/ok", "http://x/bad"], backend=MockBackend(handler))
    assert info.value.results == [{"ok": 1}, None]
    assert isinstance(info.value.failures[0].error, BackendError)


def test_mock_backend_async_handler_and_records() -> None:
    async def handler(config: RequestConfig) -> NormalizedResponse:
        return make_response(201, json={"method": config.method, "json": config.json})

    mock = MockBackend(handler)
    out = fastreq.fastreq("http://api/items", method="POST", json={"a": 1}, backend=mock)
    assert out == {"method": "POST", "json": {"a": 1}}
    assert [c.url for c in mock.requests] == ["http://api/items"]


def test_fake_backend_queues_per_pattern_and_resets() -> None:
    fake = FakeBackend(default_json={"default": True})
    fake.queue_response("*/users/*", json={"id": 1})
    fake.queue_response(re.compile(r"/text$"), text="hi")
    fake.queue_error("*/down", ConnectError("refused"), times=4)
    out = fastreq.fastreq(
        ["http://api/users/1", "http://api/users/2", "http://api/text", "http://api/down"],
        backend=fake, return_none_on_failure=True, verbose=False, retry=NO_WAIT,
    )
    assert out == [{"id": 1}, {"default": True}, "hi", None]
    assert [c.url for c in fake.requests].count("http://api/down") == 4  # 1 + 3 retries
    fake.reset()
    assert fake.requests == []
    assert fastreq.fastreq("http://api/down", backend=fake) == {"default": True}


def test_fake_backend_drives_retry_then_success() -> None:
    fake = FakeBackend()
    fake.queue_response("*", 503, times=2)
    fake.queue_response("*", json={"finally": True})
    assert fastreq.fastreq("http://api/x", backend=fake, retry=NO_WAIT) == {"finally": True}
    assert len(fake.requests) == 3


def test_every_input_gets_exactly_one_outcome() -> None:
    fake = FakeBackend()
    for i in range(0, 300, 7):
        fake.queue_error(f"http://h/{i}", ConnectError("x"), times=10)
    urls = [f"http://h/{i}" for i in range(300)]
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(urls, backend=fake, concurrency=13, retry=NO_WAIT)
    exc = info.value
    assert exc.total == 300 == len(exc.results)
    assert sorted(f.index for f in exc.failures) == list(range(0, 300, 7))
    assert exc.successes + len(exc.failures) == 300
