"""One input's attempts: rate-limit, send, decide on retry, sleep, repeat.

The retry policy decides and this loop sleeps (through the injected ``sleep``), so tests run
it on a fake clock. It never raises for a failed request: it returns the error instead, so
every input gets exactly one outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import BackendError, FastRequestsError, RetryExhaustedError
from fastreq.utils.rate_limiter import AsyncRateLimiter
from fastreq.utils.retry import RetryPolicy

__all__ = ["Attempts", "Executor"]

Sleep = Callable[[float], Awaitable[Any]]
Attempts = tuple[NormalizedResponse | None, BaseException | None, int]


class Executor:
    """Sends one RequestConfig with the retry policy and the rate limiter applied."""

    __slots__ = ("_backend", "_limiter", "_policy", "_sleep", "_statuses")

    def __init__(
        self,
        backend: Backend,
        policy: RetryPolicy,
        limiter: AsyncRateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._backend = backend
        self._policy = policy
        self._limiter = limiter
        self._sleep = sleep
        self._statuses = policy.config.retry_statuses

    async def send(self, config: RequestConfig) -> Attempts:
        """``(response, None, attempts)`` on success, ``(last_response, error, attempts)`` not."""
        backend, limiter, policy = self._backend, self._limiter, self._policy
        attempts = 0
        while True:
            attempts += 1
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
                if response.status_code not in self._statuses:
                    return response, None, attempts
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
            decision = policy.on_error(error, attempts, config.method)
            if not decision.retry:
                return None, error, attempts
            if decision.delay > 0:
                await self._sleep(decision.delay)
