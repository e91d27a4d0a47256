"""The requests backend: sync-first, a ``requests.Session`` with a large connection pool.

``request_sync()`` calls requests directly in the caller's thread (no event loop at all);
``await request()`` runs the same call in a dedicated thread pool sized for high concurrency.
HTTP/1.1 only: ``supports_http2()`` is ``False`` and ``http2=True`` (the default everywhere in
fastreq) is ignored without a warning. Redirects are followed by this backend, not requests:
one request per hop, built by :mod:`fastreq.backends._redirects`, in the thread of the request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import requests
import requests.adapters
import urllib3
import urllib3.exceptions

from fastreq.backends._common import body_too_large
from fastreq.backends._redirects import REDIRECT_CODES, RedirectChain, location_text
from fastreq.backends._requests_body import chunks, discard, normalize
from fastreq.backends._requests_errors import (
    PoolTimeout,
    TotalTimeout,
    describe,
    is_timeout,
    map_error,
)
from fastreq.backends._requests_plan import (
    Abandoned,
    RequestPlan,
    close_response_of,
    encode_into,
    expire_if_queued,
    may_resend,
    sending,
)
from fastreq.backends._requests_session import FastreqAdapter, FastreqSession, proxies_for
from fastreq.backends._urllib3_errors import stale_connection_retry
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
    FastRequestsError,
)

__all__ = ["RequestsBackend"]

_DEFAULT_WORKERS = 256


class RequestsBackend(Backend):
    """Requests through `requests <https://requests.readthedocs.io>`_ (HTTP/1.1, sync-first).

    From sync code ``request_sync()`` calls requests directly, no event loop involved. From
    async code each request runs in a private thread pool (``max_workers`` threads, 256 by
    default, not the loop's default executor) and the connection pool keeps as many
    connections per host. Other keyword arguments go to ``requests.adapters.HTTPAdapter``.

    Limits, honestly: requests has no total timeout. ``Timeout.total`` is enforced by
    clamping the connect and read timeouts to what is left of it and by checking the clock
    between body chunks (64 KiB, or whatever has arrived with urllib3-future); the awaiting
    coroutine gets its :class:`~fastreq.exceptions.RequestTimeoutError` on time, while the
    worker thread may run on up to one read timeout longer before it closes the response.
    DNS resolution is not bounded by any timeout. ``Timeout.pool`` bounds the wait for a
    free worker thread (the connection pool itself never blocks). SOCKS proxies need
    PySocks (``pip install 'requests[socks]'``; python-socks under urllib3-future), else
    :class:`~fastreq.exceptions.ConfigurationError`. No HTTP/2 (``http2`` is ignored).

    Example::

        from fastreq.backends.base import RequestConfig
        from fastreq.backends.requests import RequestsBackend

        with RequestsBackend() as backend:                 # plain sync code, no event loop
            response = backend.request_sync(RequestConfig("https://example.com/"))
            print(response.status_code, response.http_version)   # 200 HTTP/1.1
    """

    def __init__(
        self,
        http2_enabled: bool = True,
        *,
        max_workers: int = _DEFAULT_WORKERS,
        **library_options: Any,
    ) -> None:
        super().__init__(http2_enabled)
        if max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        self._max_workers = max_workers
        self._adapter_options: dict[str, Any] = {
            "pool_connections": 512,
            "pool_maxsize": max_workers,
            "pool_block": False,
            "max_retries": stale_connection_retry(
                urllib3.Retry, urllib3.exceptions, may_resend
            ),
            **library_options,
        }
        self._lock = threading.Lock()
        self._adapter: requests.adapters.HTTPAdapter | None = None
        self._session: FastreqSession | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def name(self) -> str:
        return "requests"

    def supports_http2(self) -> bool:
        """Always ``False``: requests speaks HTTP/1.1 only."""
        return False

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> RequestsBackend:
        self._get_session()
        return self

    def __enter__(self) -> RequestsBackend:
        self._get_session()
        return self

    async def close(self) -> None:
        self._close_now()

    def close_sync(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        with self._lock:
            adapter, self._adapter = self._adapter, None
            executor, self._executor = self._executor, None
            self._session = None
        if executor is not None:
            # Threads of abandoned requests finish on their own (bounded by their read
            # timeout) and close their responses; nothing waits for them here.
            executor.shutdown(wait=False, cancel_futures=True)
        if adapter is not None:
            adapter.close()

    def _get_session(self) -> FastreqSession:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            session = self._session
            if session is None:
                if self._adapter is None:
                    self._adapter = FastreqAdapter(**self._adapter_options)
                session = self._session = FastreqSession(self._adapter)
            return session

    def _get_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="fastreq-requests"
                    )
                executor = self._executor
        return executor

    # -- sending ---------------------------------------------------------------------------
    def _plan(self, config: RequestConfig) -> RequestPlan:
        timeouts = config.timeouts
        now = time.monotonic()
        total = None if timeouts is None else timeouts.total
        plan = RequestPlan(
            "", None, {}, proxies_for(config.proxy), timeouts, now,
            None if total is None else now + total,
        )
        encode_into(plan, config)
        return plan

    def _open(self, config: RequestConfig, plan: RequestPlan) -> requests.Response:
        """Send the request, following redirects hop by hop (in this thread); returns the
        final response with its body still unread. ``plan`` keeps the first hop's deadline."""
        sending.plan = plan
        try:
            return self._follow(config, plan)
        finally:
            sending.plan = None

    def _follow(self, config: RequestConfig, plan: RequestPlan) -> requests.Response:
        resp = self._send(config, plan)
        chain: RedirectChain | None = None
        while resp.status_code in REDIRECT_CODES and config.follow_redirects:
            location = resp.headers.get("Location")
            if location is None or plan.abandoned:
                break
            if chain is None:
                chain = RedirectChain(config, self.name)
            try:  # the total timeout is plan.deadline's: no elapsed counted here
                hop = chain.next_config(config, NormalizedResponse(
                    resp.status_code, {"location": location_text(location)}, url=resp.url or ""
                ))
            except BaseException:
                resp.close()
                raise
            if hop is None:
                break
            discard(resp, plan)
            if plan.abandoned:  # the awaiting coroutine gave up meanwhile: no further hop
                raise Abandoned()
            config = hop
            encode_into(plan, hop)
            resp = self._send(hop, plan)
        return resp

    def _send(self, config: RequestConfig, plan: RequestPlan) -> requests.Response:
        """One hop: requests never follows a redirect (see FastreqSession)."""
        return self._get_session().request(
            config.method,
            plan.url,
            data=plan.body,
            headers=plan.headers,
            timeout=plan.library_timeout(),
            allow_redirects=False,
            proxies=plan.proxies,
            verify=config.verify_ssl,
            stream=True,
        )

    def _read(
        self,
        resp: requests.Response,
        config: RequestConfig,
        plan: RequestPlan,
        on_chunk: Callable[[bytes], object] | None,
    ) -> bytes:
        parts: list[bytes] = []
        size, cap = 0, config.max_body_size
        for chunk in chunks(resp, config, self.name):
            if plan.abandoned:
                return b""
            if on_chunk is None:
                size += len(chunk)
                if cap is not None and size > cap:
                    raise body_too_large(cap, self.name, config.url)
                parts.append(chunk)
            else:
                result = self._deliver(on_chunk, chunk, config)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise ConfigurationError(
                        "on_chunk returned an awaitable; request_sync() needs a plain function"
                    )
            if plan.deadline is not None and time.monotonic() > plan.deadline:
                raise TotalTimeout()
        return b"".join(parts)

    def _fetch(self, config: RequestConfig, plan: RequestPlan) -> NormalizedResponse:
        """The whole exchange, synchronously: send, read the body, close."""
        started = time.monotonic()
        resp = self._open(config, plan)
        try:
            on_chunk = config.on_chunk if config.stream else None
            content = self._read(resp, config, plan, on_chunk)
        finally:
            resp.close()
        return normalize(resp, content, started)

    def request_sync(self, config: RequestConfig) -> NormalizedResponse:
        """Send one request from sync code: requests is called directly, no event loop."""
        plan: RequestPlan | None = None
        try:
            plan = self._plan(config)
            return self._fetch(config, plan)
        except Exception as exc:
            self._fail(exc, config, plan)

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        plan: RequestPlan | None = None
        try:
            plan = self._plan(config)
            if config.stream and config.on_chunk is not None:
                work = self._stream_async(config, plan, config.on_chunk)
            else:
                work = self._in_thread(plan, None, self._fetch, config, plan, first=True)
            if plan.deadline is None:
                return await work
            try:
                return await asyncio.wait_for(work, plan.deadline - time.monotonic())
            except asyncio.TimeoutError as exc:
                raise TotalTimeout() from exc
        except Exception as exc:  # asyncio.CancelledError is a BaseException: it passes
            self._fail(exc, config, plan)

    def _fail(self, exc: Exception, config: RequestConfig, plan: RequestPlan | None) -> NoReturn:
        if isinstance(exc, FastRequestsError):
            raise exc
        cause: BaseException = exc
        if isinstance(exc, TotalTimeout) and exc.__cause__ is not None:
            cause = exc.__cause__
        elif plan is not None and plan.past_deadline() and is_timeout(exc):
            # The connect/read limit that fired had been clamped to what was left of total.
            exc = TotalTimeout()
        raise self._map_error(exc, config) from cause

    async def _in_thread(
        self,
        plan: RequestPlan,
        on_abandon: Callable[[concurrent.futures.Future[Any]], None] | None,
        fn: Callable[..., Any],
        *args: Any,
        first: bool = False,
    ) -> Any:
        """``fn(*args)`` in the worker pool; if the await is given up, the thread is told to
        stop early and ``on_abandon`` runs once it has finished. For the ``first`` call of a
        request, ``Timeout.pool`` bounds the wait for a free worker thread."""
        future = self._get_executor().submit(fn, *args)
        pool = None if plan.timeouts is None or not first else plan.timeouts.pool
        timer = None
        if pool is not None:
            timer = asyncio.get_running_loop().call_later(pool, expire_if_queued, future, plan)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if plan.pool_expired:
                raise PoolTimeout() from None
            self._abandon(plan, future, on_abandon)
            raise
        except BaseException:
            self._abandon(plan, future, on_abandon)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    @staticmethod
    def _abandon(
        plan: RequestPlan,
        future: concurrent.futures.Future[Any],
        on_abandon: Callable[[concurrent.futures.Future[Any]], None] | None,
    ) -> None:
        plan.abandoned = True
        if not future.cancel() and on_abandon is not None:
            future.add_done_callback(on_abandon)

    async def _stream_async(
        self, config: RequestConfig, plan: RequestPlan, on_chunk: Callable[[bytes], object]
    ) -> NormalizedResponse:
        # Each chunk is read in a worker thread and handed to on_chunk here, on the loop.
        started = time.monotonic()
        resp: requests.Response = await self._in_thread(
            plan, close_response_of, self._open, config, plan, first=True
        )
        body = chunks(resp, config, self.name)
        executor = self._get_executor()
        future: concurrent.futures.Future[bytes | None] | None = None
        try:
            while True:
                future = executor.submit(next, body, None)
                chunk = await asyncio.wrap_future(future)
                if chunk is None:
                    break
                result = self._deliver(on_chunk, chunk, config)
                if inspect.isawaitable(result):
                    await result
        finally:
            plan.abandoned = True
            if future is None or future.done():
                resp.close()
            else:  # a read is still running in its thread: close once it is over
                future.add_done_callback(lambda _: resp.close())
        return normalize(resp, b"", started)

    def _deliver(
        self, on_chunk: Callable[[bytes], object], chunk: bytes, config: RequestConfig
    ) -> object:
        try:
            return on_chunk(chunk)
        except Exception as exc:
            raise BackendError(
                f"on_chunk callback raised {describe(exc)}", backend_name=self.name, url=config.url
            ) from exc

    # -- errors ----------------------------------------------------------------------------
    def _map_error(self, exc: BaseException, config: RequestConfig) -> FastRequestsError:
        """The fastreq exception for a requests / urllib3 / OS error."""
        return map_error(exc, config, self.name)
