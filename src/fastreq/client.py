"""The client: :class:`FastRequests` owns one backend and the policies, and runs batches.

Example::

    import asyncio
    from fastreq import FastRequests

    async def main():
        async with FastRequests(concurrency=50, rate_limit=100) as client:
            users = await client.request([f"https://api.example.com/users/{i}" for i in range(500)])
            posts = await client.request("https://api.example.com/posts", params={"page": 2})

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

from fastreq._execute import Executor
from fastreq._models import FailureDetails, Request, ReturnType
from fastreq._pipeline import run_pool
from fastreq._plan import Plan, RequestDefaults, coerce_return_type
from fastreq.backends import create_backend
from fastreq.backends.base import Backend, NormalizedResponse
from fastreq.exceptions import ConfigurationError, ParseFuncError, PartialFailureError
from fastreq.timeouts import Timeout, TimeoutLike
from fastreq.utils.headers import UserAgentPool
from fastreq.utils.logging import enable_debug, get_logger
from fastreq.utils.proxies import ProxyPool
from fastreq.utils.rate_limiter import AsyncRateLimiter, RateLimitConfig
from fastreq.utils.retry import RetryConfig, RetryPolicy
from fastreq.utils.validators import validate_concurrency, validate_cookies, validate_headers

__all__ = ["FastRequests", "ParallelRequests"]

_log = get_logger("client")
_UNSET: Any = object()
URLInput = str | Request | Iterable[str | Request]


def extract_value(response: NormalizedResponse, return_type: ReturnType) -> Any:
    """The result for one response, per ``return_type``."""
    if return_type is ReturnType.JSON:
        if response.is_json and response.content:
            return response.json()
        return response.text
    if return_type is ReturnType.TEXT:
        return response.text
    if return_type is ReturnType.CONTENT:
        return response.content
    return response


class FastRequests:
    """Fetch many URLs in parallel with one backend, retries, rate limits and shared settings.

    Use it as ``async with FastRequests(...) as client: await client.request(urls)``; outside
    a ``with`` block each ``request()`` call opens and closes the backend itself.

    ``sleep`` and ``clock`` are the time sources of the retry backoff and the rate limiter;
    tests pass fakes to run without real waiting.
    """

    def __init__(
        self,
        backend: str | Backend = "auto",
        concurrency: int = 20,
        max_retries: int = 3,
        rate_limit: float | None = None,
        rate_limit_burst: int = 5,
        http2: bool = True,
        follow_redirects: bool = True,
        verify_ssl: bool = True,
        timeout: TimeoutLike = None,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        random_user_agent: bool = True,
        random_proxy: bool = False,
        proxies: Iterable[str] | None = None,
        debug: bool = False,
        verbose: bool = True,
        return_none_on_failure: bool = False,
        *,
        retry: RetryConfig | None = None,
        user_agents: Iterable[str] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.concurrency = validate_concurrency(concurrency)
        if retry is None:
            retry = RetryConfig(max_retries=max_retries)
        elif max_retries != 3 and max_retries != retry.max_retries:
            raise ConfigurationError("give max_retries either directly or in retry=, not both")
        self.retry = retry
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._limit = None
        if rate_limit is not None:
            self._limit = RateLimitConfig(rate=rate_limit, burst=rate_limit_burst)
        for name, value in (
            ("http2", http2), ("follow_redirects", follow_redirects), ("verify_ssl", verify_ssl),
            ("random_user_agent", random_user_agent), ("random_proxy", random_proxy),
            ("debug", debug), ("verbose", verbose),
            ("return_none_on_failure", return_none_on_failure),
        ):
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        ua_pool = None
        if user_agents is not None:
            ua_pool = UserAgentPool(user_agents)
        elif random_user_agent:
            ua_pool = UserAgentPool()
        proxy_pool = None
        if proxies is not None:
            proxy_pool = ProxyPool([proxies] if isinstance(proxies, str) else proxies,
                                   random_order=random_proxy)
        elif random_proxy:
            raise ConfigurationError("random_proxy=True needs proxies=[...]")
        self._defaults = RequestDefaults(
            headers=validate_headers(headers, "client headers"),
            cookies=validate_cookies(cookies, "client cookies"),
            timeout=Timeout.coerce(timeout),
            http2=http2,
            follow_redirects=follow_redirects,
            verify_ssl=verify_ssl,
            user_agents=ua_pool,
            proxies=proxy_pool,
        )
        self.verbose = verbose
        self.return_none_on_failure = return_none_on_failure
        if debug:
            enable_debug()
        self.backend: Backend = create_backend(backend, http2=http2)
        self._entered = False
        self._active = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> FastRequests:
        await self.backend.__aenter__()
        self._entered = True
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the backend's connections."""
        self._entered = False
        await self.backend.close()

    # -- running a batch -----------------------------------------------------------------
    async def request(
        self,
        urls: URLInput,
        *,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        data: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        timeout: TimeoutLike = _UNSET,
        proxy: str | None = None,
        keys: Iterable[Hashable] | None = None,
        parse_func: Callable[[Any], Any] | None = None,
        return_type: ReturnType | str = ReturnType.JSON,
    ) -> Any:
        """Fetch ``urls``; return one result, a list in input order, or a dict by key.

        Every input is attempted; failures are collected and, unless
        ``return_none_on_failure`` is set, :class:`~fastreq.PartialFailureError` is raised at
        the end carrying every result and one :class:`~fastreq.FailureDetails` per failure.
        """
        rtype = coerce_return_type(return_type)
        if parse_func is not None and not callable(parse_func):
            raise ConfigurationError(f"parse_func must be callable, got {parse_func!r}")
        plan = Plan(
            urls, self._defaults, method=method, params=params, data=data, json=json,
            headers=headers, cookies=cookies, timeout=timeout, proxy=proxy, keys=keys,
            timeout_given=timeout is not _UNSET,
        )
        results, failures = await self._run(plan, rtype, parse_func)
        return self._shape(plan, results, failures)

    async def _run(
        self, plan: Plan, rtype: ReturnType, parse_func: Callable[[Any], Any] | None
    ) -> tuple[list[Any], list[FailureDetails]]:
        limiter = (
            AsyncRateLimiter(self._limit, clock=self._clock, sleep=self._sleep)
            if self._limit is not None else None
        )
        executor = Executor(self.backend, RetryPolicy(self.retry), limiter, self._sleep)
        make_config = plan.config_factory()
        failures: list[FailureDetails] = []
        count = plan.count
        results: list[Any] = [None] * count if count is not None else []
        if count is not None:
            source: Any = enumerate(plan.items())
        else:
            source = _growing(plan.items(), results)
        key_for = plan.key_for
        send = executor.send

        def fail(index: int, url: str, error: BaseException, attempts: int) -> None:
            failures.append(FailureDetails(index, key_for(index), url, error, attempts))
            _log.debug("input %d (%s) failed after %d attempt(s): %r", index, url, attempts, error)

        async def handle(indexed: tuple[int, Any]) -> None:
            index, item = indexed
            attempts = 0
            try:
                config = make_config(item, index)
                response, error, attempts = await send(config)
                if error is not None:
                    fail(index, config.url, error, attempts)
                    return
                assert response is not None
                value = extract_value(response, rtype)
                if parse_func is not None:
                    try:
                        value = parse_func(value)
                    except Exception as exc:
                        err = ParseFuncError(f"parse_func raised {type(exc).__name__}: {exc}")
                        err.__cause__ = exc
                        fail(index, config.url, err, attempts)
                        return
                results[index] = value
            except Exception as exc:  # validation of a lazily pulled input, decode errors...
                url = item if isinstance(item, str) else getattr(item, "url", repr(item))
                fail(index, str(url), exc, attempts)

        workers = self.concurrency if count is None else max(1, min(self.concurrency, count))
        self._active += 1
        try:
            await run_pool(source, handle, workers)
        finally:
            self._active -= 1
            if not self._entered and self._active == 0:
                await self.backend.close()
        failures.sort(key=lambda f: f.index)
        return results, failures

    def _shape(self, plan: Plan, results: list[Any], failures: list[FailureDetails]) -> Any:
        total = len(results)
        if plan.single:
            shaped: Any = results[0] if results else None
        elif plan.keys is not None:
            shaped = dict(zip(plan.keys, results, strict=True))
        else:
            shaped = results
        if failures:
            if self.return_none_on_failure:
                if self.verbose:
                    _log.warning(
                        "%d of %d requests failed (their results are None); first: %s: %r",
                        len(failures), total, failures[0].url, failures[0].error,
                    )
            else:
                raise PartialFailureError(shaped, failures, total) from failures[0].error
        return shaped


def _growing(items: Iterable[Any], results: list[Any]) -> Any:
    """Index a lazy input, growing ``results`` by one slot per item pulled."""
    for index, item in enumerate(items):
        results.append(None)
        yield index, item


#: Alias kept for users of the original ``parallel-requests`` API.
ParallelRequests = FastRequests
