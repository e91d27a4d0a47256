"""The requests backend's error mapping: requests / urllib3 / OS errors → fastreq's tree."""

from __future__ import annotations

import ssl

import requests
import urllib3
import urllib3.exceptions

from fastreq.backends._common import describe
from fastreq.backends._urllib3_errors import (
    connection_error_class,
    is_request_rejected,
    is_response_parse_error,
    urllib3_error_class,
)
from fastreq.backends.base import RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
    ConnectTimeoutError,
    FastRequestsError,
    PoolTimeoutError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    RequestTimeoutError,
    ResponseDecodeError,
    TLSError,
    TransportError,
    ValidationError,
)

__all__ = ["PoolTimeout", "TotalTimeout", "describe", "is_timeout", "map_error"]


class TotalTimeout(Exception):
    """The request ran past ``Timeout.total``."""


class PoolTimeout(Exception):
    """No worker thread was free within ``Timeout.pool``."""


def map_error(exc: BaseException, config: RequestConfig, backend_name: str) -> FastRequestsError:
    """The fastreq exception for a requests / urllib3 / OS error."""
    if isinstance(exc, FastRequestsError):
        return exc
    message = describe(exc)
    cls: type[BackendError]
    if isinstance(exc, (TotalTimeout, TimeoutError)):
        cls = RequestTimeoutError
        total = None if config.timeouts is None else config.timeouts.total
        message = f"request exceeded its total timeout of {total} s"
    elif isinstance(exc, PoolTimeout):
        cls = PoolTimeoutError
        pool = None if config.timeouts is None else config.timeouts.pool
        message = f"no worker thread became free within the pool timeout of {pool} s"
    elif isinstance(exc, requests.exceptions.ProxyError):
        cls = ProxyError
    elif isinstance(exc, requests.exceptions.SSLError):
        cls = TLSError
    elif isinstance(exc, requests.ConnectTimeout):
        cls = ConnectTimeoutError
    elif isinstance(exc, requests.ReadTimeout):
        cls = ReadTimeoutError
    elif isinstance(exc, requests.exceptions.InvalidSchema) and "SOCKS" in str(exc):
        return ConfigurationError(f"SOCKS proxy support is missing: {message}")
    elif isinstance(exc, requests.exceptions.InvalidHeader) and is_response_parse_error(
        exc, urllib3.exceptions
    ):
        cls = ProtocolError  # a malformed response head (conflicting lengths, NUL...)
    elif (
        isinstance(exc, ValueError) and isinstance(exc, requests.RequestException)
    ) or is_request_rejected(exc):
        # MissingSchema, InvalidSchema, InvalidURL, InvalidHeader, InvalidProxyURL; h11
        # refusing an illegal method or header (never sent)
        return ValidationError(f"invalid request for {config.url}: {message}")
    elif isinstance(exc, requests.exceptions.ContentDecodingError):
        cls = ResponseDecodeError
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        cls = ProtocolError
    elif isinstance(exc, requests.ConnectionError):
        cls = connection_error_class(exc, urllib3.exceptions)
    elif isinstance(exc, urllib3.exceptions.HTTPError):  # raised past requests' wrappers
        cls = urllib3_error_class(exc, urllib3.exceptions)
    elif isinstance(exc, ssl.SSLError):
        cls = TLSError
    else:
        cls = TransportError
    return cls(message, backend_name=backend_name, url=config.url)



def is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.Timeout):
        return True
    return isinstance(exc, requests.ConnectionError) and issubclass(
        connection_error_class(exc, urllib3.exceptions), RequestTimeoutError
    )


