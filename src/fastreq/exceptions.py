"""fastreq's exceptions: one tree, every error the library raises is in it.

::

    FastRequestsError
    ├── ConfigurationError            bad client options, missing backend (install hint)
    ├── ValidationError (ValueError)  bad input, raised before anything is sent
    ├── BackendError                  a request failed inside a backend
    │   ├── TransportError            the exchange itself failed
    │   │   ├── ConnectError          DNS, refused, unreachable
    │   │   ├── TLSError              certificate / handshake problems
    │   │   ├── ProxyError            the proxy refused or failed
    │   │   ├── ProtocolError         malformed / truncated response
    │   │   └── RequestTimeoutError (TimeoutError)
    │   │       ├── ConnectTimeoutError
    │   │       ├── ReadTimeoutError
    │   │       └── PoolTimeoutError
    │   ├── TooManyRedirectsError
    │   └── ResponseDecodeError       body could not be decoded (bad JSON, bad encoding)
    ├── ParseFuncError                the user's ``parse_func`` raised (original as __cause__)
    ├── CircuitOpenError              the host's circuit breaker is open: failed fast
    ├── RetryExhaustedError           429/5xx or errors persisted after all allowed attempts
    └── PartialFailureError           some inputs of a batch failed; carries every result

Backends raise only these types, with the library's original exception as ``__cause__``.

Example::

    from fastreq import fastreq, PartialFailureError

    try:
        fastreq(["http://127.0.0.1:1/", "https://example.com"])
    except PartialFailureError as exc:
        print(exc.successes, "of", exc.total, "worked")
        for failure in exc.failures:
            print(failure.url, failure.error)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastreq._models import FailureDetails
    from fastreq.backends.base import NormalizedResponse

__all__ = [
    "BackendError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "FastRequestsError",
    "ParseFuncError",
    "PartialFailureError",
    "PoolTimeoutError",
    "ProtocolError",
    "ProxyError",
    "ReadTimeoutError",
    "RequestTimeoutError",
    "ResponseDecodeError",
    "RetryExhaustedError",
    "TLSError",
    "TooManyRedirectsError",
    "TransportError",
    "ValidationError",
]


class FastRequestsError(Exception):
    """Base of every exception fastreq raises."""


class ConfigurationError(FastRequestsError):
    """An option or combination of options cannot work (e.g. no backend installed)."""


class ValidationError(FastRequestsError, ValueError):
    """An input is malformed; raised before any request is sent."""


class BackendError(FastRequestsError):
    """A request failed inside a backend.

    ``backend_name`` names the backend, ``url`` the request; the underlying library's
    exception is ``__cause__``. ``code`` carries a library-specific error code when there is
    one (libcurl's ``CURLE_*`` number, for instance).
    """

    def __init__(
        self,
        message: str,
        *,
        backend_name: str | None = None,
        url: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.backend_name = backend_name
        self.url = url
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_backend_error,
            (type(self), str(self), self.backend_name, self.url, self.code),
        )


def _rebuild_backend_error(
    cls: type[BackendError], message: str, backend_name: str | None, url: str | None,
    code: int | None,
) -> BackendError:
    return cls(message, backend_name=backend_name, url=url, code=code)


class TransportError(BackendError):
    """The HTTP exchange failed at the transport level."""


class ConnectError(TransportError):
    """Could not connect: DNS failure, connection refused, network unreachable."""


class TLSError(TransportError):
    """TLS handshake or certificate verification failed."""


class ProxyError(TransportError):
    """The proxy could not be reached or refused the request."""


class ProtocolError(TransportError):
    """The server sent a malformed, truncated or otherwise invalid response."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The request ran out of time (see the subclasses for which phase)."""


class ConnectTimeoutError(RequestTimeoutError):
    """Connecting took longer than the connect timeout."""


class ReadTimeoutError(RequestTimeoutError):
    """Waiting for response data took longer than the read timeout."""


class PoolTimeoutError(RequestTimeoutError):
    """Waiting for a free connection took longer than the pool timeout."""


class TooManyRedirectsError(BackendError):
    """More redirects than allowed, or a redirect loop."""


class ResponseDecodeError(BackendError):
    """The body could not be decoded as announced (invalid JSON, bad compression...)."""


class ParseFuncError(FastRequestsError):
    """The user's ``parse_func`` raised; the original exception is ``__cause__``."""


class CircuitOpenError(FastRequestsError):
    """The circuit breaker of ``host`` is open after repeated failures; nothing was sent."""

    def __init__(self, message: str, *, host: str = "") -> None:
        super().__init__(message)
        self.host = host


class RetryExhaustedError(FastRequestsError):
    """Every allowed attempt failed with a retryable status or error.

    ``attempts`` is how many requests were made, ``last_error`` the last exception (if the
    last attempt raised) and ``last_response`` the last response (if it was a 429/5xx).
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_error: BaseException | None = None,
        last_response: NormalizedResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error
        self.last_response = last_response


class PartialFailureError(FastRequestsError):
    """Raised after a whole batch ran when at least one input failed.

    Nothing is thrown away: ``results`` is the full result (list in input order, dict by
    key, or the single value) with ``None`` in each failed slot, ``failures`` holds one
    :class:`~fastreq.FailureDetails` per failed input.
    """

    def __init__(self, results: Any, failures: list[FailureDetails], total: int) -> None:
        self.results = results
        self.failures = failures
        self.total = total
        self.successes = total - len(failures)
        first = failures[0] if failures else None
        detail = f"; first: {first.url}: {first.error!r}" if first is not None else ""
        super().__init__(f"{len(failures)} of {total} requests failed{detail}")
