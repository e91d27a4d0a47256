"""Applying a :class:`RequestConfig` to a libcurl easy handle (the backend's slow path)."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import pycurl

from fastreq.backends._common import encode_body, with_implied_headers
from fastreq.backends._curl_handle import Easy
from fastreq.backends._curl_stream import chunk_writer
from fastreq.backends.base import RequestConfig
from fastreq.exceptions import ValidationError
from fastreq.timeouts import Timeout

__all__ = ["HAS_HTTP2", "HAS_HTTP3", "apply_all", "check_method", "set_headers",
           "set_user_agent", "split_user_agent"]

HAS_HTTP2 = bool(pycurl.version_info()[4] & pycurl.VERSION_HTTP2)
HAS_HTTP3 = bool(pycurl.version_info()[4] & pycurl.VERSION_HTTP3)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # send Content-Length: 0 when empty
_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})
_HTTP_PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
#: libcurl's receive buffer (default 16 KiB). 128 KiB cut the CPU per 1 MiB body by ~25-30%
#: (fewer, larger write callbacks and chunks to join); small responses are unaffected.
#: 256 KiB measured no better and sometimes much worse (~2x: allocator churn per transfer).
_BUFFER_SIZE = 128 * 1024
#: methods libcurl may resend by itself when a reused connection died before any response
#: (RFC 9110 idempotent methods); every other one gets a resend guard (``Easy.guard``)
#: slack over max_body_size for CURLOPT_MAXFILESIZE_LARGE (plus 1/64 of it), see apply_all:
#: far more than gzip/deflate/brotli ever add, even five layers of them
_CAP_SLACK = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_KNOWN_METHODS = _IDEMPOTENT | {"POST", "PATCH", "CONNECT", "QUERY"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@lru_cache(maxsize=256)
def _parse_proxy(proxy: str) -> tuple[str, str | None, str | None]:
    """``(proxy URL without credentials, username, password)``, credentials unquoted."""
    parts = urlsplit(proxy)
    scheme = parts.scheme.lower()
    hostport = parts.netloc.rpartition("@")[2]
    if scheme not in _PROXY_SCHEMES or not hostport:
        raise ValidationError(
            f"proxy must look like scheme://[user:password@]host[:port] with scheme one of "
            f"{', '.join(sorted(_PROXY_SCHEMES))}; got {proxy!r}"
        )
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return f"{scheme}://{hostport}", user, password


def split_user_agent(headers: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """``(user agent, the other headers)``: a new dict without the (first, any case)
    ``User-Agent`` entry, which goes through ``CURLOPT_USERAGENT`` instead of the header
    list, so a rotating user agent leaves the cached list alone. An empty value stays in the
    dict (sent as an empty header; ``CURLOPT_USERAGENT`` "" sends none)."""
    if not headers:
        return "", {}
    rest = dict(headers)
    ua = rest.get("User-Agent")
    if ua is not None:
        key = "User-Agent"
    else:
        for key in rest:
            if len(key) == 10 and key.lower() == "user-agent":
                ua = rest[key]
                break
        else:
            return "", rest
    if ua:
        del rest[key]
        return ua, rest
    return "", rest


def set_user_agent(setopt: Any, ua: str) -> None:
    """``CURLOPT_USERAGENT`` ("" sends no User-Agent header)."""
    if "\r" in ua or "\n" in ua:
        raise ValidationError(f"invalid header 'User-Agent': {ua!r} (CR, LF or ':' in it)")
    setopt(pycurl.USERAGENT, ua)


def check_method(method: str) -> str:
    """``method`` upper-cased; a :class:`ValidationError` unless it is an HTTP token (it
    goes on the request line verbatim through ``CURLOPT_CUSTOMREQUEST``)."""
    upper = method.upper()
    if upper in _KNOWN_METHODS or _TOKEN.fullmatch(method):
        return upper
    raise ValidationError(f"invalid HTTP method {method!r} (not an HTTP token)")


def set_headers(setopt: Any, headers: dict[str, str], *, fresh: bool = False) -> None:
    """The header list: never ``Expect: 100-continue``; Accept-Encoding through libcurl.

    ``ACCEPT_ENCODING`` "" offers every encoding libcurl decodes; a caller's value is sent
    as is and libcurl still decodes what it can. ``headers`` holds no User-Agent entry
    (see :func:`split_user_agent`) except an empty one. A ``Proxy-Authorization`` header
    goes to ``CURLOPT_PROXYHEADER``: with libcurl's default ``CURLHEADER_SEPARATE`` it is
    sent only in requests to a proxy (CONNECT, or a plain-http request through it), never to
    an origin server (none at all without a proxy). ``fresh``: the handle was just
    ``reset()`` (no proxy header list to clear).
    """
    lines = ["Expect:"]
    proxy_lines: list[str] = []
    accept_encoding = ""
    for name, value in headers.items():
        if (not name or ":" in name or "\r" in name or "\n" in name or "\r" in value
                or "\n" in value):
            raise ValidationError(f"invalid header {name!r}: {value!r} (CR, LF or ':' in it)")
        lower = name.lower()
        if lower == "accept-encoding":
            accept_encoding = value
        elif lower == "proxy-authorization":
            proxy_lines.append(f"{name}: {value}" if value else f"{name};")
        elif value:
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name};")  # "Name:" would tell libcurl to drop the header
    setopt(pycurl.HTTPHEADER, lines)
    if proxy_lines or not fresh:
        setopt(pycurl.PROXYHEADER, proxy_lines)
    setopt(pycurl.ACCEPT_ENCODING, accept_encoding)


def apply_all(
    h: Easy, config: RequestConfig, url: str, *, h2: bool, http3: bool, ca_bundle: str | None
) -> None:
    """``reset()`` ``h`` and apply every option ``config`` implies (the slow path)."""
    h.key = None
    h.stream_error = None
    h.cap = None
    h.guarded = False
    method = check_method(config.method)
    h.reset()
    setopt = h.setopt
    body, content_type = encode_body(config)
    ua, h.headers = split_user_agent(config.headers)
    h.ua = ua
    h.cookies = dict(config.cookies) if config.cookies is not None else None
    headers = with_implied_headers(h.headers, config.cookies, content_type)
    set_user_agent(setopt, ua)  # "": none of pycurl's own, fastreq's layer sets one
    setopt(pycurl.URL, url)
    setopt(pycurl.NOSIGNAL, 1)
    setopt(pycurl.PROTOCOLS, _HTTP_PROTOCOLS)
    setopt(pycurl.REDIR_PROTOCOLS, _HTTP_PROTOCOLS)
    setopt(pycurl.HEADERFUNCTION, h.hdrs.append)
    setopt(pycurl.BUFFERSIZE, _BUFFER_SIZE)
    if config.stream and config.on_chunk is not None:
        setopt(pycurl.WRITEFUNCTION, chunk_writer(h, config.on_chunk))
    else:
        setopt(pycurl.WRITEFUNCTION, h.chunks.append)
        # max_body_size: libcurl (8.x) checks MAXFILESIZE against the bytes it writes,
        # i.e. the decoded body, and stops before writing past it (a decompression bomb
        # never inflates further). It also checks it up front against a Content-Length,
        # which is the ENCODED size of an encoded body (and even for HEAD: none there), so
        # the limit given to libcurl has some slack for encodings that grew the body; the
        # engine checks the exact cap when the transfer is done (Engine._drain).
        cap = config.max_body_size
        if cap is not None and method != "HEAD":
            h.cap = cap = max(0, cap)
            setopt(pycurl.MAXFILESIZE_LARGE, cap + (cap >> 6) + _CAP_SLACK)
    # HTTP version: h2 over TLS (h1.1 on plain http), multiplexed when possible (no
    # PIPEWAIT: see Engine.gate for how a cold burst still shares one connection)
    if http3 and h2 and config.http2:
        setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_3)
    elif h2 and config.http2:
        setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
    else:
        setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    # method and body
    if method not in _IDEMPOTENT:
        h.guarded = True
        setopt(pycurl.PREREQFUNCTION, h.guard)
    if method == "HEAD":
        setopt(pycurl.NOBODY, 1)
    elif body is not None or method in _BODY_METHODS:
        data = body if body is not None else b""
        setopt(pycurl.POSTFIELDSIZE_LARGE, len(data))
        setopt(pycurl.POSTFIELDS, data)
        if method != "POST":
            setopt(pycurl.CUSTOMREQUEST, method)
    elif method != "GET":
        setopt(pycurl.CUSTOMREQUEST, method)
    set_headers(setopt, headers, fresh=True)
    # redirects: never followed by libcurl (FOLLOWLOCATION stays 0); CurlBackend.request()
    # follows them hop by hop with fastreq's own policy (backends/_redirects.py)
    # TLS
    if ca_bundle is not None:
        setopt(pycurl.CAINFO, ca_bundle)
        setopt(pycurl.PROXY_CAINFO, ca_bundle)
    if not config.verify_ssl:
        setopt(pycurl.SSL_VERIFYPEER, 0)
        setopt(pycurl.SSL_VERIFYHOST, 0)
        setopt(pycurl.PROXY_SSL_VERIFYPEER, 0)
        setopt(pycurl.PROXY_SSL_VERIFYHOST, 0)
    # timeouts
    timeouts = config.timeouts
    if timeouts is not None:
        _apply_timeouts(setopt, timeouts)
    # proxy: "" disables libcurl's own reading of HTTP_PROXY & co.
    if config.proxy:
        proxy, user, password = _parse_proxy(config.proxy)
        setopt(pycurl.PROXY, proxy)
        if user is not None:
            setopt(pycurl.PROXYUSERNAME, user)
            setopt(pycurl.PROXYPASSWORD, password or "")
    else:
        setopt(pycurl.PROXY, "")


def _apply_timeouts(setopt: Any, timeouts: Timeout) -> None:
    if timeouts.connect is not None:
        setopt(pycurl.CONNECTTIMEOUT_MS, max(1, math.ceil(timeouts.connect * 1000)))
    if timeouts.total is not None:
        setopt(pycurl.TIMEOUT_MS, max(1, math.ceil(timeouts.total * 1000)))
    if timeouts.read is not None:
        setopt(pycurl.LOW_SPEED_LIMIT, 1)
        setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(timeouts.read)))

