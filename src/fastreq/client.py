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
import contextlib
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
)
from typing import IO, Any

from fastreq._batch import BatchSetup, extract_value, shape_results
from fastreq._curl_lane import run_batch_fast
from fastreq._download import RestartingBackend, StreamCallback
from fastreq._execute import Executor
from fastreq._inputs import FileInput, is_async_input, normalize_input
from fastreq._lanes import HostGates
from fastreq._lines import stream_lines
from fastreq._models import Request, Result, ReturnType
from fastreq._plan import Plan, RequestDefaults
from fastreq._stream import collect, make_plan, plan_options, prepare, stream_results
from fastreq.backends import create_backend
from fastreq.backends.base import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_REDIRECTS, Backend
from fastreq.config import DEFAULT_TIMEOUT, GlobalConfig
from fastreq.exceptions import ConfigurationError
from fastreq.timeouts import Timeout, TimeoutLike
from fastreq.utils.circuit_breaker import CircuitBreakerConfig, breaker_from_option
from fastreq.utils.cookies import CookieJar
from fastreq.utils.headers import UserAgentPool
from fastreq.utils.logging import enable_debug
from fastreq.utils.progress import Progress, ProgressCallback
from fastreq.utils.proxies import proxy_pool_from_option
from fastreq.utils.rate_limiter import AsyncRateLimiter, HostLimit, RateLimitConfig
from fastreq.utils.retry import RetryConfig, RetryPolicy
from fastreq.utils.validators import (
    validate_concurrency,
    validate_cookies,
    validate_headers,
    validate_limit,
)

__all__ = ["FastRequests", "ParallelRequests", "extract_value"]

_UNSET: Any = object()
#: What ``urls`` may be: one URL or Request, an iterable or async iterable of them, or a
#: file of them (a path, an open text file, :func:`~fastreq.from_file`).
URLInput = (
    str | Request | Iterable[str | Request] | AsyncIterable[str | Request] | FileInput
    | os.PathLike[str] | IO[str]
)
_BOOL_OPTIONS = (
    "http2", "follow_redirects", "verify_ssl", "random_user_agent", "random_proxy", "debug",
    "verbose", "return_none_on_failure", "progress", "persist_cookies",
)


class FastRequests:
    """Fetch many URLs in parallel with one backend, retries, rate limits and shared settings.

    Use it as ``async with FastRequests(...) as client: await client.request(urls)``; outside
    a ``with`` block each ``request()`` call opens and closes the backend itself.

    Beyond the classic options (see the README's table):

    - ``retry``: a :class:`~fastreq.RetryConfig` (backoff, statuses, methods, Retry-After cap);
    - ``per_host_concurrency`` / ``per_host_rate_limit`` (+ ``per_host_burst``) and
      ``host_limits={"host": HostLimit(...)}``: limits per host, so one slow or strict host
      never holds back the others;
    - ``circuit_breaker``: ``True`` or a :class:`~fastreq.CircuitBreakerConfig` (off by default);
    - ``proxies``: a list, a file path, or ``FASTREQ_PROXIES``; failed proxies cool down for
      ``proxy_cooldown`` seconds; ``when_proxies_exhausted="wait"|"fail"`` (never direct);
    - ``timeout``: 10 s connect / 60 s total by default (``DEFAULT_TIMEOUT``), ``None`` waits
      forever;
    - ``persist_cookies``: keep server cookies per host between requests (on by default);
    - ``max_redirects`` (20) and ``max_body_size`` (100 MiB of decoded body per response,
      ``None``: no cap): a longer redirect chain or a bigger body fails that input;
    - ``user_agents``: your own list or file of user agents;
    - ``progress`` (a live bar on stderr) and ``progress_callback(done, total)``;
    - ``sleep`` and ``clock``: the time sources of backoff, limiters, breaker and proxy
      cool-down; tests pass fakes to run without real waiting.

    Defaults can come from ``FASTREQ_*`` environment variables (:class:`~fastreq.GlobalConfig`).
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
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        random_user_agent: bool = True,
        random_proxy: bool = False,
        proxies: Iterable[str] | str | os.PathLike[str] | None = None,
        debug: bool = False,
        verbose: bool = True,
        return_none_on_failure: bool = False,
        *,
        retry: RetryConfig | None = None,
        per_host_concurrency: int | None = None,
        per_host_rate_limit: float | None = None,
        per_host_burst: int = 1,
        host_limits: Mapping[str, HostLimit] | None = None,
        circuit_breaker: CircuitBreakerConfig | bool | None = None,
        proxy_cooldown: float = 60.0,
        when_proxies_exhausted: str = "wait",
        persist_cookies: bool = True,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        user_agents: Iterable[str] | str | os.PathLike[str] | None = None,
        progress: bool = False,
        progress_callback: ProgressCallback | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        env = GlobalConfig.from_env()
        backend = env.pick("backend", backend, "auto")
        concurrency = env.pick("concurrency", concurrency, 20)
        max_retries = env.pick("max_retries", max_retries, 3)
        rate_limit = env.pick("rate_limit", rate_limit, None)
        rate_limit_burst = env.pick("rate_limit_burst", rate_limit_burst, 5)
        per_host_concurrency = env.pick("per_host_concurrency", per_host_concurrency, None)
        per_host_rate_limit = env.pick("per_host_rate_limit", per_host_rate_limit, None)
        timeout = env.pick("timeout", timeout, DEFAULT_TIMEOUT)
        http2 = env.pick("http2", http2, True)
        verify_ssl = env.pick("verify_ssl", verify_ssl, True)
        debug = env.pick("debug", debug, False)
        progress = env.pick("progress", progress, False)
        if proxies is None and env.proxies:
            proxies = list(env.proxies)
        if user_agents is None and env.user_agents_file:
            user_agents = env.user_agents_file
        for name in _BOOL_OPTIONS:
            value = locals()[name]
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")

        self.concurrency = validate_concurrency(concurrency)
        if retry is None:
            retry = RetryConfig(max_retries=max_retries)
        elif max_retries not in (3, retry.max_retries):
            raise ConfigurationError("give max_retries either directly or in retry=, not both")
        self.retry = retry
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        # One limiter and one set of host gates per client: limits hold across request() calls.
        self._limiter = (
            AsyncRateLimiter(
                RateLimitConfig(rate=rate_limit, burst=rate_limit_burst),
                clock=self._clock, sleep=self._sleep,
            )
            if rate_limit is not None else None
        )
        self._gates = HostGates(
            HostLimit(per_host_concurrency, per_host_rate_limit, per_host_burst),
            host_limits, self.concurrency, clock=self._clock, sleep=self._sleep,
        )
        self._breaker = breaker_from_option(circuit_breaker, clock=self._clock)
        self._proxy_pool = proxy_pool_from_option(
            proxies, random_order=random_proxy, cooldown=proxy_cooldown,
            when_exhausted=when_proxies_exhausted, clock=self._clock, sleep=self._sleep,
        )
        self._no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
        self._jar = CookieJar() if persist_cookies else None
        client_cookies = validate_cookies(cookies, "client cookies")
        if self._jar is not None and client_cookies:
            self._jar.set(client_cookies)
            client_cookies = None
        ua_pool = None
        if user_agents is not None:
            ua_pool = (
                UserAgentPool.from_file(user_agents)
                if isinstance(user_agents, (str, os.PathLike)) else UserAgentPool(user_agents)
            )
        elif random_user_agent:
            ua_pool = UserAgentPool()
        self._defaults = RequestDefaults(
            headers=validate_headers(headers, "client headers"),
            cookies=client_cookies,
            timeout=Timeout.coerce(timeout),
            http2=http2,
            follow_redirects=follow_redirects,
            verify_ssl=verify_ssl,
            user_agents=ua_pool,
            max_redirects=validate_limit(max_redirects, "max_redirects"),
            max_body_size=validate_limit(max_body_size, "max_body_size", allow_none=True),
        )
        self.verbose = verbose
        self.return_none_on_failure = return_none_on_failure
        self._progress = progress
        self._progress_callback = progress_callback
        if debug:
            enable_debug()
        self.backend: Backend = create_backend(backend, http2=http2)
        self._entered = False
        self._active = 0

    # -- cookies -------------------------------------------------------------------------
    def set_cookies(self, cookies: dict[str, str]) -> None:
        """Add cookies sent to every host from now on."""
        checked = validate_cookies(cookies, "set_cookies()") or {}
        if self._jar is None:
            self._defaults = _replace_cookies(
                self._defaults, {**(self._defaults.cookies or {}), **checked}
            )
        else:
            self._jar.set(checked)

    def reset_cookies(self) -> None:
        """Forget every cookie: those you set and those servers set."""
        if self._jar is not None:
            self._jar.clear()
        self._defaults = _replace_cookies(self._defaults, None)

    def server_cookies(self, host: str) -> dict[str, str]:
        """The cookies servers set for ``host`` (kept for that host only)."""
        return self._jar.server_cookies(host) if self._jar is not None else {}

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
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        download_dir: str | os.PathLike[str] | None = None,
        stream_callback: StreamCallback | None = None,
    ) -> Any:
        """Fetch ``urls``; return one result, a list in input order, or a dict by key.

        Every input is attempted; failures are collected and, unless
        ``return_none_on_failure`` is set, :class:`~fastreq.PartialFailureError` is raised at
        the end carrying every result and one :class:`~fastreq.FailureDetails` per failure.

        ``urls`` may also be an async iterator, a :class:`pathlib.Path` or an open text
        file (see :func:`~fastreq.from_file`). ``journal="job.db"`` makes the call
        resumable (see :meth:`stream`); ``download_dir=`` writes each body to its own file
        (the result is its path); ``return_type="stream"`` hands each chunk to
        ``stream_callback(chunk, index)``.
        """
        options = prepare(return_type, parse_func, journal, retry_failed, download_dir,
                          stream_callback)
        request_options = plan_options(locals(), _UNSET)
        if options.journal is not None or is_async_input(urls):
            plan, source = make_plan(self, urls, request_options)
            results, failures = await collect(self, plan, source, options)
        else:
            plan = Plan(normalize_input(urls), self._defaults, **request_options)
            async with self._session():
                setup = self._batch_setup(plan.count, restarting=not options.plain)
                options.fill(setup, plan.key_for)
                results, failures = await run_batch_fast(self, plan, setup, options, parse_func)
        return shape_results(
            plan, results, failures, none_on_failure=self.return_none_on_failure,
            verbose=self.verbose,
        )

    def stream(
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
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        download_dir: str | os.PathLike[str] | None = None,
        stream_callback: StreamCallback | None = None,
    ) -> AsyncGenerator[Result, None]:
        """Yield one :class:`~fastreq.Result` per input as it completes (completion order).

        Same options as :meth:`request`; failures are results (``r.ok`` is ``False``), never
        raised. Memory stays bounded: finished results wait in a small queue and the workers
        wait when you consume slowly. ``journal="job.db"`` records each outcome; the same
        call after a crash does not fetch the inputs already done and yields their stored
        results (``r.replayed``) as their inputs are read; ``retry_failed=True`` fetches the
        recorded failures again. Options are checked here, before the first ``async for``.

        Example::

            async with FastRequests(concurrency=100) as client:
                async with contextlib.aclosing(client.stream(urls, journal="job.db")) as rs:
                    async for r in rs:  # aclosing: leaving early cancels the rest at once
                        print(r.index, r.status, r.ok)
        """
        options = prepare(return_type, parse_func, journal, retry_failed, download_dir,
                          stream_callback)
        plan, source = make_plan(self, urls, plan_options(locals(), _UNSET))
        return stream_results(self, plan, source, options)

    def aiter_lines(self, url: str, **request_options: Any) -> AsyncGenerator[str, None]:
        """The lines of one URL's body as they arrive (NDJSON, SSE...), never buffered whole.

        Request options as for :meth:`request` (``method``, ``params``, ``headers``,
        ``timeout``...); one request, not retried midway. Use ``contextlib.aclosing`` to
        stop early::

            async for line in client.aiter_lines(feed_url, timeout=None): ...
        """
        return stream_lines(self, url, request_options)

    def _batch_setup(self, count: int | None, restarting: bool = False) -> BatchSetup:
        """The scheduler's settings for one call (``restarting``: chunk sinks per attempt)."""
        backend: Backend = RestartingBackend(self.backend) if restarting else self.backend
        executor = Executor(
            backend, RetryPolicy(self.retry), self._limiter, self._sleep,
            breaker=self._breaker, proxies=self._proxy_pool, jar=self._jar,
        )
        return BatchSetup(
            executor=executor,
            concurrency=self.concurrency,
            gate_for=self._gates if self._gates.active else None,
            needs_host=self._gates.active or self._breaker is not None,
            proxy_pool=self._proxy_pool is not None,
            no_proxy=self._no_proxy,
            progress=Progress(count, bar=self._progress, callback=self._progress_callback),
        )

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        """One running call; outside ``async with`` the last one closes the backend."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            if not self._entered and self._active == 0:
                await self.backend.close()


def _replace_cookies(defaults: RequestDefaults, cookies: dict[str, str] | None) -> RequestDefaults:
    from dataclasses import replace

    return replace(defaults, cookies=cookies or None)


#: Alias kept for users of the original ``parallel-requests`` API.
ParallelRequests = FastRequests
