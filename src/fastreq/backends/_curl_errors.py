"""libcurl result codes -> the :mod:`fastreq.exceptions` tree, in one place."""

from __future__ import annotations

import pycurl

from fastreq.exceptions import (
    BackendError,
    ConnectError,
    ConnectTimeoutError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseDecodeError,
    TLSError,
    TooManyRedirectsError,
    TransportError,
)

__all__ = ["curl_error"]

_CONNECT = frozenset({6, 7, 45})  # COULDNT_RESOLVE_HOST, COULDNT_CONNECT, INTERFACE_FAILED
_PROXY = frozenset({5, 97})  # COULDNT_RESOLVE_PROXY, PROXY (SOCKS/CONNECT handshake)
_TLS = frozenset({35, 51, 53, 54, 58, 59, 60, 66, 77, 80, 82, 83, 90, 91, 98})
# WEIRD_SERVER_REPLY, HTTP2, PARTIAL_FILE, GOT_NOTHING, SEND_ERROR, RECV_ERROR, HTTP2_STREAM,
# HTTP3, QUIC_CONNECT_ERROR
_PROTOCOL = frozenset({8, 16, 18, 52, 55, 56, 92, 95, 96})
_UNSUPPORTED_PROTOCOL = 1
# libcurl's wording when the connect phase (DNS, TCP, TLS, proxy handshake) ran out of time
_CONNECT_PHASE_TIMEOUTS = ("Connection timed out", "Resolving timed out", "Failed to connect")
_TIMEOUT = 28  # OPERATION_TIMEDOUT
_TOO_MANY_REDIRECTS = 47
_BAD_CONTENT_ENCODING = 61
_FILESIZE_EXCEEDED = 63  # MAXFILESIZE = RequestConfig.max_body_size (decoded bytes)
_ABORTED_BY_CALLBACK = 42
#: libcurl's message when ``Easy.guard`` (CURLOPT_PREREQFUNCTION) stopped a resend
_PREREQ_ABORTED = "pre-request callback"
_NOT_RESENT = (
    "the connection closed before any response and a {method} request is not resent "
    "automatically (the server may have processed it)"
)
_WRITE_ERROR = 23

_NAMES: dict[int, str] = {}
for _attr in sorted(dir(pycurl)):
    if _attr.startswith("E_") and not _attr.startswith("E_MULTI_"):
        _NAMES.setdefault(getattr(pycurl, _attr), _attr[2:])
_NAMES.update({92: "HTTP2_STREAM", 95: "HTTP3", 96: "QUIC_CONNECT_ERROR", 97: "PROXY"})


def curl_error(
    code: int,
    message: str,
    url: str,
    *,
    connected: bool,
    via_proxy: bool,
    method: str = "",
) -> BackendError:
    """The fastreq exception for libcurl result ``code`` (``__cause__``: a ``pycurl.error``).

    ``connected`` says whether the request got as far as being sent (with libcurl's message,
    decides connect vs read timeout); ``via_proxy`` whether a proxy was configured (a refused
    connection is then the proxy's).
    """
    cls: type[BackendError]
    if code in _CONNECT:
        cls = ProxyError if via_proxy and code != 6 else ConnectError
    elif code == _TIMEOUT:
        connecting = not connected or message.startswith(_CONNECT_PHASE_TIMEOUTS)
        cls = ConnectTimeoutError if connecting else ReadTimeoutError
    elif code in _TLS:
        cls = TLSError
    elif code in _PROXY:
        cls = ProxyError
    elif code == _TOO_MANY_REDIRECTS:
        cls = TooManyRedirectsError
    elif code in (_BAD_CONTENT_ENCODING, _FILESIZE_EXCEEDED):
        cls = ResponseDecodeError
    elif code == _ABORTED_BY_CALLBACK and _PREREQ_ABORTED in message:
        cls = ProtocolError  # it was sent once: never a "safe to resend" class
        message = _NOT_RESENT.format(method=method or "non-idempotent")
    elif code in _PROTOCOL:
        cls = ProxyError if via_proxy and "CONNECT" in message else ProtocolError
    elif code == _UNSUPPORTED_PROTOCOL and "HTTP/0.9" in message:
        cls = ProtocolError  # a reply without a status line: garbage, not HTTP
    else:
        cls = TransportError
    name = _NAMES.get(code, "UNKNOWN")
    text = message or name.replace("_", " ").lower()
    exc = cls(f"{text} (curl error {code} {name}) for {url}", backend_name="curl", url=url,
              code=code)
    exc.__cause__ = pycurl.error(code, message)
    return exc


def closed_error(url: str, message: str) -> TransportError:
    """The request was in flight when the backend was closed."""
    return TransportError(f"{message}: {url}", backend_name="curl", url=url)


def callback_error(url: str, exc: BaseException) -> BackendError:
    """The caller's ``on_chunk`` raised; the transfer was aborted (original as ``__cause__``)."""
    err = BackendError(
        f"on_chunk callback raised {type(exc).__name__}: {exc} for {url}",
        backend_name="curl", url=url, code=_WRITE_ERROR,
    )
    err.__cause__ = exc
    return err
