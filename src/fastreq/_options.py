"""The options ``fastreq()`` and ``fastreq_async()`` accept, typed for editors and mypy.

They are exactly :class:`~fastreq.FastRequests`' arguments plus ``request()``'s; a test keeps
this list and those signatures in step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, TypedDict

from fastreq._models import ReturnType
from fastreq.backends.base import Backend
from fastreq.timeouts import TimeoutLike
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
    proxies: Iterable[str] | None
    debug: bool
    verbose: bool
    return_none_on_failure: bool
    retry: RetryConfig | None
    user_agents: Iterable[str] | None
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
