"""Retry: :class:`RetryConfig` (what the user asks for) and :class:`RetryPolicy` (decisions).

The policy only *decides* — retry or not, and after how long. The pipeline does the sleeping,
so tests drive it with a fake clock and never wait for real.

Example::

    from fastreq import RetryConfig, fastreq

    fastreq(urls, retry=RetryConfig(max_retries=5, backoff_base=0.2, max_delay=10))
    fastreq(urls, method="POST", retry=RetryConfig(retry_methods=None))  # POST retried too
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastreq.backends.base import NormalizedResponse
from fastreq.exceptions import (
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    PoolTimeoutError,
    ProtocolError,
    ProxyError,
    RequestTimeoutError,
)

__all__ = ["IDEMPOTENT_METHODS", "RetryConfig", "RetryDecision", "RetryPolicy"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
# Errors where the request provably never reached the server: safe to resend for any method.
# A ProxyError is the proxy refusing or failing the connection (CONNECT, SOCKS, proxy down):
# the request was never forwarded.
_NOT_SENT: tuple[type[BaseException], ...] = (
    ConnectError, ConnectTimeoutError, PoolTimeoutError, ProxyError,
)


@dataclass(frozen=True)
class RetryConfig:
    """How to retry.

    - ``max_retries``: extra attempts after the first (0: never retry);
    - delay before retry *n* (1-based):
      ``min(max_delay, backoff_base * backoff_multiplier**(n-1))``,
      reduced by up to ``jitter`` (a fraction, 0 to 1) at random so clients do not retry in step;
    - ``retry_statuses``: statuses worth another try (429 and 5xx gateway errors by default);
    - ``retry_errors``: exception types worth another try (transport problems: connection,
      timeout, truncated response, proxy; not TLS or redirect loops);
    - ``retry_methods``: methods that may be resent after the server may have acted on them
      (idempotent ones by default; ``None`` retries every method). Errors that prove the
      request never left (connection refused, connect timeout, a proxy that failed) are
      retried for any method;
    - ``respect_retry_after``: a 429/503 ``Retry-After`` (seconds or HTTP-date) replaces the
      backoff delay; a value above ``retry_after_cap`` fails that input at once instead of
      parking a worker for an hour.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_errors: tuple[type[BaseException], ...] = (
        ConnectError,
        RequestTimeoutError,
        ProtocolError,
        ProxyError,
    )
    retry_methods: frozenset[str] | None = IDEMPOTENT_METHODS
    respect_retry_after: bool = True
    retry_after_cap: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or (
            self.max_retries < 0
        ):
            raise ConfigurationError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("backoff_base", "max_delay", "retry_after_cap"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise ConfigurationError(f"RetryConfig.{name} must be >= 0, got {value!r}")
        if not isinstance(self.backoff_multiplier, (int, float)) or self.backoff_multiplier < 1:
            raise ConfigurationError(
                f"RetryConfig.backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}"
            )
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"RetryConfig.jitter must be in [0, 1], got {self.jitter!r}")
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))
        if self.retry_methods is not None:
            object.__setattr__(
                self, "retry_methods", frozenset(m.upper() for m in self.retry_methods)
            )


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """``retry`` with ``delay`` seconds, or stop with ``reason``."""

    retry: bool
    delay: float = 0.0
    reason: str = ""


@dataclass
class RetryPolicy:
    """Applies a :class:`RetryConfig` to one outcome at a time. Stateless apart from ``rng``."""

    config: RetryConfig = field(default_factory=RetryConfig)
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], float] = time.time  # wall clock, for HTTP-date Retry-After only

    def is_retry_status(self, status: int) -> bool:
        return status in self.config.retry_statuses

    def _method_allows(self, method: str) -> bool:
        methods = self.config.retry_methods
        return methods is None or method in methods

    def backoff(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (1 for the first retry)."""
        cfg = self.config
        delay = cfg.backoff_base * cfg.backoff_multiplier ** (retry_number - 1)
        delay = min(cfg.max_delay, delay)
        if cfg.jitter:
            delay *= 1.0 - cfg.jitter * self.rng.random()
        return delay

    def on_error(self, error: BaseException, attempts: int, method: str) -> RetryDecision:
        """Decide after attempt number ``attempts`` raised ``error``."""
        if attempts > self.config.max_retries:
            return RetryDecision(False, reason=f"gave up after {attempts} attempts")
        if not isinstance(error, self.config.retry_errors):
            return RetryDecision(False, reason=f"{type(error).__name__} is not retryable")
        if not self._method_allows(method) and not isinstance(error, _NOT_SENT):
            return RetryDecision(
                False, reason=f"{method} is not retried after it may have been sent"
            )
        return RetryDecision(True, self.backoff(attempts))

    def on_response(
        self, response: NormalizedResponse, attempts: int, method: str
    ) -> RetryDecision:
        """Decide after attempt number ``attempts`` answered with a retryable status."""
        status = response.status_code
        if attempts > self.config.max_retries:
            return RetryDecision(False, reason=f"HTTP {status} after {attempts} attempts")
        if not self._method_allows(method):
            return RetryDecision(False, reason=f"HTTP {status}; {method} is not retried")
        delay = self.backoff(attempts)
        if self.config.respect_retry_after and status in _RETRY_AFTER_STATUSES:
            wait = parse_retry_after(response.headers.get("retry-after"), self.now)
            if wait is not None:
                if wait > self.config.retry_after_cap:
                    return RetryDecision(
                        False,
                        reason=f"HTTP {status} with Retry-After {wait:.0f}s, above the cap of "
                        f"{self.config.retry_after_cap:.0f}s",
                    )
                delay = wait
        return RetryDecision(True, delay)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait for a Retry-After value (seconds or HTTP-date); ``None`` if invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())

