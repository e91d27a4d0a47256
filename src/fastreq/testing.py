"""Test doubles for code that uses fastreq: no network, no server.

- :class:`MockBackend` calls your handler for every request;
- :class:`FakeBackend` answers from queues of canned responses or errors per URL pattern
  and records every request it got.

Example::

    from fastreq import fastreq
    from fastreq.testing import FakeBackend, MockBackend, make_response

    fake = FakeBackend()
    fake.queue_response("*/users/*", json={"id": 1})
    fake.queue_error("*/down", ConnectError("refused"))
    fastreq(["https://api/users/1", "https://api/down"], backend=fake,
            return_none_on_failure=True)                     # -> [{"id": 1}, None]
    assert fake.requests[0].url == "https://api/users/1"

    mock = MockBackend(lambda cfg: make_response(json={"echo": cfg.url}))
"""

from __future__ import annotations

import fnmatch
import inspect
import json as _json
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import BackendError, FastRequestsError

__all__ = ["FakeBackend", "MockBackend", "make_response"]

Handler = Callable[[RequestConfig], "NormalizedResponse | Awaitable[NormalizedResponse]"]
Pattern = str | re.Pattern[str] | None


def make_response(
    status: int = 200,
    *,
    json: Any = None,
    text: str | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    url: str = "",
) -> NormalizedResponse:
    """Build a :class:`NormalizedResponse`: give one of ``json``, ``text`` or ``content``."""
    given = [x for x in (json, text, content) if x is not None]
    if len(given) > 1:
        raise ValueError("give at most one of json=, text=, content=")
    hdrs = dict(headers or {})
    lower = {k.lower() for k in hdrs}
    if json is not None:
        body = _json.dumps(json).encode()
        if "content-type" not in lower:
            hdrs["Content-Type"] = "application/json"
    elif text is not None:
        body = text.encode("utf-8")
        if "content-type" not in lower:
            hdrs["Content-Type"] = "text/plain; charset=utf-8"
    else:
        body = content or b""
    return NormalizedResponse.from_backend(status, hdrs, body, url)


def _finish(response: NormalizedResponse, config: RequestConfig) -> NormalizedResponse:
    if not response.url:
        response.url = config.url
    if config.stream and config.on_chunk is not None and response.content:
        config.on_chunk(response.content)
        response.content = b""
    return response


class MockBackend(Backend):
    """Calls ``handler(config)`` (sync or async) for each request.

    The handler returns a :class:`NormalizedResponse` (see :func:`make_response`) or raises a
    :mod:`fastreq.exceptions` error to simulate a failure (any other exception becomes a
    :class:`~fastreq.exceptions.BackendError`). ``requests`` lists every config received.
    """

    def __init__(self, handler: Handler, http2_enabled: bool = True) -> None:
        super().__init__(http2_enabled)
        self._handler = handler
        self.requests: list[RequestConfig] = []
        self.closed = False

    @property
    def name(self) -> str:
        return "mock"

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        self.requests.append(config)
        self.closed = False
        try:
            result = self._handler(config)
            if inspect.isawaitable(result):
                result = await result
        except FastRequestsError:
            raise
        except Exception as exc:
            raise BackendError(
                f"mock handler raised {type(exc).__name__}: {exc}", backend_name="mock",
                url=config.url,
            ) from exc
        if not isinstance(result, NormalizedResponse):
            raise BackendError(
                f"mock handler returned {type(result).__name__}, not a NormalizedResponse",
                backend_name="mock", url=config.url,
            )
        return _finish(result, config)

    async def close(self) -> None:
        self.closed = True


class FakeBackend(Backend):
    """Answers from queues of canned responses/errors per URL pattern; records every request.

    A pattern is a glob (``"*/users/*"``), a compiled regex (searched) or ``None`` (any URL).
    Each queued item answers one request, first in first out; the first pattern (in the order
    queued) whose queue is not empty and that matches wins. With nothing queued the default
    response is returned (200 ``{}`` unless given).
    """

    def __init__(
        self,
        default_status: int = 200,
        default_json: Any = None,
        *,
        default_response: NormalizedResponse | None = None,
        http2_enabled: bool = True,
    ) -> None:
        super().__init__(http2_enabled)
        self._default_status = default_status
        self._default_json = {} if default_json is None else default_json
        self._default_response = default_response
        self._queues: dict[Pattern, deque[NormalizedResponse | BaseException]] = {}
        self.requests: list[RequestConfig] = []

    @property
    def name(self) -> str:
        return "fake"

    def queue_response(
        self, pattern: Pattern = None, status: int = 200, *, times: int = 1, **body: Any
    ) -> None:
        """Queue a response (``json=``, ``text=``, ``content=``, ``headers=``) ``times`` times."""
        response = make_response(status, **body)
        queue = self._queues.setdefault(pattern, deque())
        for _ in range(times):
            queue.append(make_response(status, **body) if times > 1 else response)

    def queue_error(self, pattern: Pattern, error: BaseException, *, times: int = 1) -> None:
        """Queue an exception to raise (use :mod:`fastreq.exceptions` types)."""
        queue = self._queues.setdefault(pattern, deque())
        queue.extend([error] * times)

    def reset(self) -> None:
        """Forget queued answers and recorded requests."""
        self._queues.clear()
        self.requests.clear()

    @staticmethod
    def _matches(pattern: Pattern, url: str) -> bool:
        if pattern is None:
            return True
        if isinstance(pattern, re.Pattern):
            return pattern.search(url) is not None
        return pattern == url or fnmatch.fnmatchcase(url, pattern)

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        self.requests.append(config)
        for pattern, queue in self._queues.items():
            if queue and self._matches(pattern, config.url):
                item = queue.popleft()
                if isinstance(item, BaseException):
                    if isinstance(item, FastRequestsError):
                        raise item
                    raise BackendError(str(item), backend_name="fake", url=config.url) from item
                return _finish(_copy(item), config)
        if self._default_response is not None:
            return _finish(_copy(self._default_response), config)
        return _finish(make_response(self._default_status, json=self._default_json), config)

    async def close(self) -> None:
        return None


def _copy(response: NormalizedResponse) -> NormalizedResponse:
    return NormalizedResponse(
        response.status_code, list(response.header_items), response.content, url=response.url,
        is_json=response.is_json,
    )
