"""urllib3's exceptions → fastreq's tree, shared by the requests and niquests backends.

Both libraries wrap urllib3 (niquests its fork, urllib3-future, with the same exception names),
so each passes its own ``exceptions`` module in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from fastreq.backends._common import IDEMPOTENT_METHODS
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
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
    "is_request_rejected",
    "is_response_parse_error",
    "proxy_mapping",
    "quiet_https_pools",
    "stale_connection_retry",
    "tracking_reuse",
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


def is_request_rejected(exc: BaseException) -> bool:
    """Whether a library error is h11 refusing to write the request (an illegal method,
    header name or value): nothing was sent, the input is invalid."""
    seen: list[BaseException] = [exc]
    for e in seen:  # library error <- urllib3 ProtocolError <- h11.LocalProtocolError
        if len(seen) > 12:
            break
        if type(e).__name__ == "LocalProtocolError" and type(e).__module__.startswith("h11"):
            return True
        seen += [x for x in (*e.args[:1], e.__cause__, e.__context__)
                 if isinstance(x, BaseException) and x not in seen]
    return False


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


#: (pool, whether its connection had carried a request before) of the last checkout made in
#: this thread / task: set by the pools of ``tracking_reuse``, read by the Retry below
_checkout: ContextVar[tuple[Any, bool] | None] = ContextVar("fastreq_checkout", default=None)
_SENT = "_fastreq_checkouts"  # attribute counting the checkouts of a connection
_reuse_classes: dict[type, type] = {}


def _note_checkout(pool: Any, conn: Any) -> Any:
    count = getattr(conn, _SENT, 0)
    # Connected and handed out before: a keep-alive connection reused from the pool. One
    # the pool found dropped was closed in _get_conn (connected afresh on sending), and a
    # connection opened ahead of time (happy eyeballs) was never handed out.
    _checkout.set((pool, bool(count and conn.is_connected)))
    setattr(conn, _SENT, count + 1)
    return conn


def _reuse_class(pool_class: Any) -> Any:
    """``pool_class`` with a ``_get_conn`` that notes whether the connection is a reused one."""
    if getattr(pool_class, "_fastreq_tracks_reuse", False):
        return pool_class
    tracked = _reuse_classes.get(pool_class)
    if tracked is not None:
        return tracked
    if inspect.iscoroutinefunction(pool_class._get_conn):

        class AsyncTracked(pool_class):  # type: ignore[misc]
            _fastreq_tracks_reuse = True

            async def _get_conn(self, *args: Any, **kwargs: Any) -> Any:
                return _note_checkout(self, await super()._get_conn(*args, **kwargs))

        tracked = AsyncTracked
    else:

        class Tracked(pool_class):  # type: ignore[misc]
            _fastreq_tracks_reuse = True

            def _get_conn(self, *args: Any, **kwargs: Any) -> Any:
                return _note_checkout(self, super()._get_conn(*args, **kwargs))

        tracked = Tracked
    tracked.__name__ = tracked.__qualname__ = pool_class.__name__
    _reuse_classes[pool_class] = tracked
    return tracked


def tracking_reuse(manager: Any) -> Any:
    """Make the pools ``manager`` (a urllib3 PoolManager, proxy or SOCKS manager, sync or
    async) creates note whether each request goes out on a reused connection: only then
    may ``stale_connection_retry`` resend it. Returns ``manager``."""
    classes = manager.pool_classes_by_scheme
    manager.pool_classes_by_scheme = {
        scheme: _reuse_class(cls) for scheme, cls in classes.items()
    }
    return manager


def _lost_connection(error: BaseException) -> bool:
    """Whether a urllib3 ``ProtocolError`` is the connection closed or reset under the
    request (an ``OSError`` underneath): no response byte, nothing the server objected to."""
    inner = [*error.args[1:2], error.__cause__, error.__context__]
    return any(isinstance(e, OSError) and not isinstance(e, TimeoutError) for e in inner)


def _reused_by(pool: Any) -> bool:
    """Whether the request that just failed in ``pool`` went out on a reused connection
    (forgotten once asked: the resend checks its own connection out)."""
    checkout = _checkout.get()
    _checkout.set(None)
    return checkout is not None and checkout[0] is pool and checkout[1]


def stale_connection_retry(
    retry_class: Any, errors: ModuleType, may_resend: Callable[[], bool] | None = None
) -> Any:
    """A urllib3 ``Retry`` (``retry_class`` and ``errors`` from the same urllib3) that
    resends an idempotent request once when its connection was a reused keep-alive one
    that the server closed or reset before any response byte (dropped as it was reused),
    and retries nothing else: a POST is never resent; a request that failed on a fresh
    connection, a response that cannot be parsed, timeouts and refused connections are
    left to fastreq's retry policy. Reuse is known only from pools set up by
    ``tracking_reuse`` (any other: never resent). ``may_resend()``, asked in the thread
    sending the request, can veto the resend (the requests backend: not once the request
    was given up, when its socket may well have been closed under it)."""

    class StaleConnectionRetry(retry_class):  # type: ignore[misc]
        def increment(
            self, method: str | None = None, url: str | None = None, response: Any = None,
            error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None,
        ) -> Any:
            reused = _reused_by(_pool)
            if (
                reused
                and response is None
                and isinstance(error, errors.ProtocolError)
                and _lost_connection(error)
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


_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})


def proxy_mapping(proxy: str | None, *, socks_ok: bool, socks_hint: str
                  ) -> dict[str, str] | None:
    """requests'/niquests' ``proxies=`` for one proxy URL, its scheme checked first;
    ``socks_ok``: the SOCKS extra is installed (else ``socks_hint`` says what to install)."""
    if proxy is None:
        return None
    scheme = proxy.partition("://")[0].lower()
    if scheme not in _PROXY_SCHEMES:
        raise ConfigurationError(
            f"unsupported proxy scheme {scheme}:// (use http://, https:// or socks5://)"
        )
    if scheme.startswith("socks") and not socks_ok:
        raise ConfigurationError(socks_hint)
    return {"http": proxy, "https": proxy}


def quiet_https_pools(manager: Any, stock: type, quiet: type) -> Any:
    """``manager`` with its stock HTTPS pool class (not SOCKS' own) replaced by ``quiet``
    (no warning for unverified HTTPS), and reuse tracked for :func:`stale_connection_retry`."""
    classes = manager.pool_classes_by_scheme
    if classes.get("https") is stock:
        manager.pool_classes_by_scheme = {**classes, "https": quiet}
    return tracking_reuse(manager)
