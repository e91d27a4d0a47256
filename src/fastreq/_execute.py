"""One input's attempts: gate, send, decide on retry, sleep, repeat.

Per attempt: the host's circuit breaker may fail it fast (or make it wait), a proxy is taken
from the pool (never direct when all are down), the host's and the global rate limiters hand
out a start time, then the backend sends. The retry policy decides and this loop sleeps
(through the injected ``sleep``), so tests run it on a fake clock. It never raises for a
failed request: it returns the error, so every input gets exactly one outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    CircuitOpenError,
    ConnectError,
    ConnectTimeoutError,
    FastRequestsError,
    ProxyError,
    RetryExhaustedError,
)
from fastreq.utils.circuit_breaker import CircuitBreaker
from fastreq.utils.cookies import CookieJar
from fastreq.utils.proxies import ProxyPool
from fastreq.utils.rate_limiter import AsyncRateLimiter
from fastreq.utils.retry import RetryPolicy

__all__ = ["Attempts", "Executor", "HostContext"]

Sleep = Callable[[float], Awaitable[Any]]
Attempts = tuple[NormalizedResponse | None, BaseException | None, int]
# Errors a pool proxy is blamed for: the connection we open goes to the proxy.
_PROXY_FAULTS = (ProxyError, ConnectError, ConnectTimeoutError)


@dataclass(slots=True)
class HostContext:
    """What the executor needs to know about the input's host (``None`` fields: unused)."""

    host: str
    limiter: AsyncRateLimiter | None = None
    first_token_taken: bool = False
    use_proxy_pool: bool = False
    trial: bool = False  # holds the breaker's half-open trial, outcome not yet recorded


class Executor:
    """Sends one RequestConfig with retries, limits, breaker, proxy rotation and cookies."""

    __slots__ = (
        "_backend",
        "_breaker",
        "_jar",
        "_limiter",
        "_policy",
        "_proxies",
        "_sleep",
        "_statuses",
    )

    def __init__(
        self,
        backend: Backend,
        policy: RetryPolicy,
        limiter: AsyncRateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        *,
        breaker: CircuitBreaker | None = None,
        proxies: ProxyPool | None = None,
        jar: CookieJar | None = None,
    ) -> None:
        self._backend = backend
        self._policy = policy
        self._limiter = limiter
        self._sleep = sleep
        self._statuses = policy.config.retry_statuses
        self._breaker = breaker
        self._proxies = proxies
        self._jar = jar

    @property
    def sender(self) -> Callable[[RequestConfig, HostContext | None], Awaitable[Attempts]]:
        """:meth:`send`, one coroutine less per input when there is no breaker (whose
        half-open trial :meth:`send` hands back when an input ends early)."""
        return self._send if self._breaker is None else self.send

    async def send(self, config: RequestConfig, ctx: HostContext | None = None) -> Attempts:
        """``(response, None, attempts)`` on success, ``(last_response, error, attempts)`` not."""
        if self._breaker is None or ctx is None:
            return await self._send(config, ctx)
        try:
            return await self._send(config, ctx)
        finally:
            if ctx.trial:  # cancelled, or no proxy to send the trial through
                ctx.trial = False
                self._breaker.release_trial(ctx.host)

    async def _send(self, config: RequestConfig, ctx: HostContext | None) -> Attempts:
        backend, limiter, policy, jar = self._backend, self._limiter, self._policy, self._jar
        breaker = self._breaker
        pool = self._proxies if ctx is not None and ctx.use_proxy_pool else None
        base_cookies = config.cookies
        failed_proxy: str | None = None
        attempts = 0
        while True:
            if breaker is not None:
                assert ctx is not None
                try:
                    wait = breaker.before_request(ctx.host)
                    while wait > 0:
                        await self._sleep(wait)
                        wait = breaker.before_request(ctx.host)
                except CircuitOpenError as exc:
                    return None, exc, attempts
                ctx.trial = breaker.holds_trial(ctx.host)
            attempts += 1
            if ctx is not None and ctx.limiter is not None and (
                attempts > 1 or not ctx.first_token_taken
            ):
                await ctx.limiter.acquire()
            if pool is not None:
                try:
                    config.proxy = await pool.acquire(avoid=failed_proxy)
                except ProxyError as exc:
                    return None, exc, attempts
            if jar:
                from_jar = jar.for_url(config.url)
                if from_jar:
                    config.cookies = {**from_jar, **base_cookies} if base_cookies else from_jar
            if limiter is not None:
                await limiter.acquire()
            try:
                response = await backend.request(config)
            except FastRequestsError as exc:
                error: BaseException = exc
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a custom backend broke the contract: still one outcome
                error = BackendError(
                    f"backend {backend.name!r} raised {type(exc).__name__}: {exc}",
                    backend_name=backend.name,
                    url=config.url,
                )
                error.__cause__ = exc
            else:
                if jar is not None and response.has_header("set-cookie"):
                    jar.extract(response.url or config.url, response.get_all("set-cookie"))
                if response.status_code not in self._statuses:
                    if breaker is not None:
                        assert ctx is not None
                        ctx.trial = False
                        breaker.record_success(ctx.host)
                    return response, None, attempts
                if breaker is not None:
                    assert ctx is not None
                    ctx.trial = False
                    breaker.record_failure(ctx.host)
                decision = policy.on_response(response, attempts, config.method)
                if not decision.retry:
                    return response, RetryExhaustedError(
                        f"{decision.reason} ({config.method} {config.url})",
                        attempts=attempts,
                        last_response=response,
                    ), attempts
                if decision.delay > 0:
                    await self._sleep(decision.delay)
                continue
            proxy_fault = pool is not None and isinstance(error, _PROXY_FAULTS) and config.proxy
            if breaker is not None:
                assert ctx is not None
                if proxy_fault:  # the pool proxy failed, not the host: no mark against it
                    if ctx.trial:
                        ctx.trial = False
                        breaker.release_trial(ctx.host)
                else:
                    ctx.trial = False
                    breaker.record_failure(ctx.host)
            if proxy_fault:
                assert pool is not None and config.proxy is not None
                pool.mark_failed(config.proxy)
                failed_proxy = config.proxy
            decision = policy.on_error(error, attempts, config.method)
            if not decision.retry:
                return None, error, attempts
            if decision.delay > 0:
                await self._sleep(decision.delay)
