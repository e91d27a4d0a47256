"""urllib3's exceptions → fastreq's tree, shared by the requests and niquests backends.

Both libraries wrap urllib3 (niquests its fork, urllib3-future, with the same exception names),
so each passes its own ``exceptions`` module in.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

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

__all__ = ["connection_error_class", "urllib3_error_class"]


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
    if isinstance(exc, errors.ProtocolError):  # "Connection aborted", IncompleteRead...
        return ProtocolError
    return TransportError


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
