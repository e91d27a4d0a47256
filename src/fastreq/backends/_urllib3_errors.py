"""urllib3's exceptions → fastreq's tree, shared by the requests and niquests backends.

Both libraries wrap urllib3 (niquests its fork, urllib3-future, with the same exception names),
so each passes its own ``exceptions`` module in.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from fastreq.backends._common import IDEMPOTENT_METHODS
from fastreq.exceptions import (
    BackendError,
    ConnectError,
    ConnectTimeoutError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseDecodeError,
    TLSError,
    TransportError,
)

__all__ = [
    "connection_error_class",
    "is_response_parse_error",
    "stale_connection_retry",
    "urllib3_error_class",
]


def urllib3_error_class(exc: BaseException, errors: ModuleType) -> type[BackendError]:
    """The fastreq class for a urllib3 error (``errors`` is that urllib3's ``exceptions``)."""
    if isinstance(exc, errors.ProxyError):
        return ProxyError
    if isinstance(exc, errors.SSLError):
        return TLSError
    if isinstance(exc, errors.NewConnectionError):  # a ConnectTimeoutError subclass, alas
        return ConnectError
    if isinstance(exc, errors.ConnectTimeoutError):
        return ConnectTimeoutError
    if isinstance(exc, (errors.ReadTimeoutError, errors.TimeoutError)):
        return ReadTimeoutError
    if isinstance(exc, errors.DecodeError):
        return ResponseDecodeError
    if isinstance(exc, (errors.ProtocolError, errors.InvalidHeader)):
        # "Connection aborted", IncompleteRead..., and a response whose head or chunked
        # framing cannot be parsed (urllib3 raises InvalidHeader for those)
        return ProtocolError
    return TransportError


def is_response_parse_error(exc: BaseException, errors: ModuleType) -> bool:
    """Whether a library's ``InvalidHeader`` comes from parsing the *response* (urllib3's
    error underneath), not from checking the caller's request headers."""
    # The library wraps urllib3's error as its first argument (and, while handling it, as
    # __context__, which a later re-raise from another ``except`` block may replace).
    inner = [*exc.args[:1], exc.__cause__, exc.__context__]
    return any(isinstance(e, errors.InvalidHeader) for e in inner)


def connection_error_class(exc: BaseException, errors: ModuleType) -> type[BackendError]:
    """The class for a library ConnectionError, which wraps urllib3's error: a MaxRetryError
    around the reason for connection failures, the error itself while reading the body."""
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, errors.MaxRetryError):
        reason = reason.reason
    if isinstance(reason, errors.HTTPError):
        cls = urllib3_error_class(reason, errors)
        return ConnectError if cls is TransportError else cls
    return ConnectError


def stale_connection_retry(
    retry_class: Any, errors: ModuleType, may_resend: Callable[[], bool] | None = None
) -> Any:
    """A urllib3 ``Retry`` (``retry_class`` and ``errors`` from the same urllib3) that
    resends an idempotent request once when its connection died before any response came
    back (a keep-alive connection the server dropped as it was reused), and retries nothing
    else: a POST is never resent; timeouts and refused connections are left to fastreq's
    retry policy. ``may_resend()``, asked in the thread sending the request, can veto the
    resend (the requests backend: not once the request was given up, when its socket may
    well have been closed under it)."""

    class StaleConnectionRetry(retry_class):  # type: ignore[misc]
        def increment(
            self, method: str | None = None, url: str | None = None, response: Any = None,
            error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None,
        ) -> Any:
            if (
                response is None
                and isinstance(error, errors.ProtocolError)
                and (method or "").upper() in IDEMPOTENT_METHODS
                and self.total
                and (may_resend is None or may_resend())
            ):
                return super().increment(method, url, response, error, _pool, _stacktrace)
            # exactly what urllib3 does with requests' default Retry(0, read=False)
            return retry_class(0, read=False).increment(
                method, url, response, error, _pool, _stacktrace
            )

    return StaleConnectionRetry(
        total=1, connect=0, read=1, redirect=0, status=0, other=0,
        allowed_methods=IDEMPOTENT_METHODS, raise_on_redirect=False, raise_on_status=False,
        respect_retry_after_header=False, backoff_factor=0,
    )
