"""The options ``fastreq()`` and ``fastreq_async()`` accept, typed for editors and mypy.

They are exactly :class:`~fastreq.FastRequests`' arguments plus ``request()``'s; a test keeps
this list and those signatures in step.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, TypedDict

from fastreq._models import ReturnType
from fastreq.backends.base import Backend
from fastreq.timeouts import TimeoutLike
from fastreq.utils.circuit_breaker import CircuitBreakerConfig
from fastreq.utils.progress import ProgressCallback
from fastreq.utils.rate_limiter import HostLimit
from fastreq.utils.retry import RetryConfig

__all__ = ["FetchOptions"]


class FetchOptions(TypedDict, total=False):
    # client options (FastRequests.__init__)
    backend: str | Backend
    concurrency: int
    max_retries: int
    rate_limit: float | None
    rate_limit_burst: int
    http2: bool
    follow_redirects: bool
    verify_ssl: bool
    timeout: TimeoutLike
    cookies: dict[str, str] | None
    headers: dict[str, str] | None
    random_user_agent: bool
    random_proxy: bool
    proxies: Iterable[str] | str | os.PathLike[str] | None
    debug: bool
    verbose: bool
    return_none_on_failure: bool
    retry: RetryConfig | None
    per_host_concurrency: int | None
    per_host_rate_limit: float | None
    per_host_burst: int
    host_limits: Mapping[str, HostLimit] | None
    circuit_breaker: CircuitBreakerConfig | bool | None
    proxy_cooldown: float
    when_proxies_exhausted: str
    persist_cookies: bool
    max_redirects: int
    max_body_size: int | None
    user_agents: Iterable[str] | str | os.PathLike[str] | None
    progress: bool
    progress_callback: ProgressCallback | None
    sleep: Callable[[float], Awaitable[Any]] | None
    clock: Callable[[], float] | None
    # request options (FastRequests.request)
    method: str
    params: dict[str, Any] | None
    data: Any
    json: Any
    proxy: str | None
    keys: Iterable[Hashable] | None
    parse_func: Callable[[Any], Any] | None
    return_type: ReturnType | str
    journal: str | os.PathLike[str] | None
    retry_failed: bool
    download_dir: str | os.PathLike[str] | None
    stream_callback: Callable[[bytes, int], Any] | None
