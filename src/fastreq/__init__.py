"""fastreq: fetch many HTTP URLs in parallel, fast, politely, without losing a result.

Example::

    from fastreq import fastreq

    results = fastreq([f"https://api.example.com/items/{i}" for i in range(1000)],
                      concurrency=50, rate_limit=100)
"""

from fastreq._api import fastreq, fastreq_async, fastreq_iter, fastreq_stream
from fastreq._inputs import from_file
from fastreq._journal import JournaledError
from fastreq._lines import iter_lines
from fastreq._models import FailureDetails, Request, Result, ReturnType
from fastreq.backends import available_backends
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.client import FastRequests, ParallelRequests
from fastreq.config import DEFAULT_TIMEOUT, GlobalConfig
from fastreq.exceptions import (
    BackendError,
    CircuitOpenError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    FastRequestsError,
    ParseFuncError,
    PartialFailureError,
    PoolTimeoutError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    RequestTimeoutError,
    ResponseDecodeError,
    RetryExhaustedError,
    TLSError,
    TooManyRedirectsError,
    TransportError,
    ValidationError,
)
from fastreq.timeouts import Timeout
from fastreq.utils.circuit_breaker import CircuitBreakerConfig
from fastreq.utils.rate_limiter import AsyncRateLimiter, HostLimit, RateLimitConfig, TokenBucket
from fastreq.utils.retry import RetryConfig

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncRateLimiter",
    "Backend",
    "BackendError",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "FailureDetails",
    "FastRequests",
    "FastRequestsError",
    "GlobalConfig",
    "HostLimit",
    "JournaledError",
    "NormalizedResponse",
    "ParallelRequests",
    "ParseFuncError",
    "PartialFailureError",
    "PoolTimeoutError",
    "ProtocolError",
    "ProxyError",
    "RateLimitConfig",
    "ReadTimeoutError",
    "Request",
    "RequestConfig",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "Result",
    "RetryConfig",
    "RetryExhaustedError",
    "ReturnType",
    "TLSError",
    "Timeout",
    "TokenBucket",
    "TooManyRedirectsError",
    "TransportError",
    "ValidationError",
    "__version__",
    "available_backends",
    "fastreq",
    "fastreq_async",
    "fastreq_iter",
    "fastreq_stream",
    "from_file",
    "iter_lines",
]
