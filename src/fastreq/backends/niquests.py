"""The niquests backend: ``niquests.AsyncSession``, async native, HTTP/2 over TLS.

HTTP/2 is negotiated by ALPN on https:// URLs (plain http:// stays HTTP/1.1); HTTP/3 is off
unless ``disable_http3=False`` is passed. niquests only has session-wide TLS verification and
redirect limits, so the backend keeps one session per (verify_ssl, max_redirects, http2).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import inspect
import ssl
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, NoReturn

import niquests
import niquests.adapters
from niquests.packages import urllib3 as _urllib3

from fastreq.backends._common import (
    body_too_large,
    build_url,
    deliver_chunk,
    describe,
    encode_body,
    outgoing_headers,
)
from fastreq.backends._decode import BoundedDecoder
from fastreq.backends._urllib3_errors import (
    connection_error_class,
    is_response_parse_error,
    stale_connection_retry,
    urllib3_error_class,
)
from fastreq.backends.base import (
    DEFAULT_MAX_REDIRECTS,
    Backend,
    NormalizedResponse,
    RequestConfig,
)
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
    ConnectTimeoutError,
    FastRequestsError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    RequestTimeoutError,
    ResponseDecodeError,
    TLSError,
    TooManyRedirectsError,
    TransportError,
    ValidationError,
)

__all__ = ["NiquestsBackend"]

_CHUNK = 64 * 1024
_VERSIONS = {10: "HTTP/1.0", 11: "HTTP/1.1", 20: "HTTP/2", 30: "HTTP/3"}
_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})
_HAS_INCOMING_COOKIES = (
    "allow_incoming_cookies" in inspect.signature(niquests.AsyncSession.__init__).parameters
)
_SessionKey = tuple[bool, int, bool]  # verify_ssl, max_redirects, http2


class _TotalTimeout(Exception):
    """The request ran past ``Timeout.total``."""


class _QuietHTTPSPool(_urllib3.AsyncHTTPSConnectionPool):
    """No InsecureRequestWarning for a pool that verifies nothing: ``verify_ssl=False`` is an
    explicit choice, and a warning per connection would be noise (or an error)."""

    async def _validate_conn(self, conn: Any) -> None:
        if _urllib3.util.ssl_.resolve_cert_reqs(self.cert_reqs) != ssl.CERT_NONE:
            await super()._validate_conn(conn)
        else:  # urllib3-future's HTTPS check, minus the warning
            await _urllib3.AsyncHTTPConnectionPool._validate_conn(self, conn)


def _quiet(manager: Any) -> Any:
    classes = manager.pool_classes_by_scheme
    if classes.get("https") is _urllib3.AsyncHTTPSConnectionPool:  # not SOCKS' own pools
        manager.pool_classes_by_scheme = {**classes, "https": _QuietHTTPSPool}
    return manager


class _QuietAdapter(niquests.adapters.AsyncHTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _quiet(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _quiet(super().proxy_manager_for(proxy, **proxy_kwargs))


class _Session(niquests.AsyncSession):
    """An AsyncSession that never stores a server cookie nor replays one on a redirect, and
    whose unverified HTTPS pools do not warn."""

    def mount(self, prefix: str, adapter: Any) -> None:
        if type(adapter) is niquests.adapters.AsyncHTTPAdapter:
            adapter.__class__ = _QuietAdapter  # same state, two methods overridden
            _quiet(adapter.poolmanager)
        super().mount(prefix, adapter)

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        super().rebuild_auth(prepared_request, response)
        # niquests drops the Cookie header on every hop and rebuilds it from a jar. Send
        # exactly the caller's cookies instead, and only while the host stays the same.
        headers = prepared_request.headers
        headers.pop("Cookie", None)
        previous = response.request
        cookie = previous.headers.get("Cookie")
        if cookie and not self.should_strip_auth(previous.url, prepared_request.url):
            headers["Cookie"] = cookie


class NiquestsBackend(Backend):
    """Requests through `niquests <https://niquests.readthedocs.io>`_ (async, HTTP/2 capable).

    HTTP/2 is used on https:// when the server offers it and both ``http2_enabled`` and the
    request's ``http2`` allow it (``http_version`` tells what was spoken); HTTP/3 stays off
    unless ``disable_http3=False`` is passed. Other keyword arguments go to
    ``niquests.AsyncSession`` (``pool_maxsize``, ``resolver``, ``happy_eyeballs``...).

    ``Timeout.connect`` and ``read`` map to niquests' own; ``total`` is enforced around the
    whole exchange with :func:`asyncio.wait_for`. ``pool`` is not used: the connection pool
    does not block, so no request waits for a free connection. SOCKS proxies need
    python-socks (``pip install 'niquests[socks]'``), else
    :class:`~fastreq.exceptions.ConfigurationError`.

    Example::

        from fastreq.backends.base import RequestConfig
        from fastreq.backends.niquests import NiquestsBackend

        async with NiquestsBackend() as backend:
            response = await backend.request(RequestConfig("https://example.com/"))
            print(response.status_code, response.http_version)   # 200 HTTP/2
    """

    def __init__(self, http2_enabled: bool = True, **library_options: Any) -> None:
        super().__init__(http2_enabled)
        self._options: dict[str, Any] = {
            "pool_connections": 512,
            "pool_maxsize": 256,
            "disable_http3": True,
            **library_options,
        }
        if _HAS_INCOMING_COOKIES:
            self._options.setdefault("allow_incoming_cookies", False)
        self._sessions: dict[_SessionKey, _Session] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return "niquests"

    def supports_http2(self) -> bool:
        """``True`` unless built with ``http2_enabled=False``."""
        return self._http2_enabled

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> NiquestsBackend:
        await self._session_for((True, DEFAULT_MAX_REDIRECTS, self._http2_enabled))
        return self

    async def close(self) -> None:
        sessions, self._sessions, self._loop = self._sessions, {}, None
        failure: Exception | None = None
        for session in sessions.values():  # close them all, then report the first failure
            try:
                await session.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    async def _session_for(self, key: _SessionKey) -> _Session:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._sessions:
                assert self._loop is not None
                if not self._loop.is_closed():
                    raise ConfigurationError(
                        "this NiquestsBackend is in use on another event loop; use one backend "
                        "per loop (or close() it first)"
                    )
                # Its loop is gone (asyncio.run() ended without close()): start afresh.
                stale, self._sessions = self._sessions, {}
                for old in stale.values():
                    with suppress(Exception):
                        await old.close()
            self._loop = loop
        session = self._sessions.get(key)
        if session is None:
            verify, max_redirects, http2 = key
            # By default: resend an idempotent request once when its reused connection died
            # before any response; nothing else (fastreq's policy does the real retries).
            retries = stale_connection_retry(_urllib3.Retry, _urllib3.exceptions)
            session = _Session(**{"retries": retries, **self._options, "disable_http2": not http2})
            session.trust_env = False  # fastreq decides proxies itself
            session.verify = verify
            session.max_redirects = max_redirects
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self._sessions[key] = session
        return session

    # -- sending ---------------------------------------------------------------------------
    def _proxies(self, proxy: str | None) -> dict[str, str] | None:
        if proxy is None:
            return None
        scheme = proxy.partition("://")[0].lower()
        if scheme not in _PROXY_SCHEMES:
            raise ConfigurationError(
                f"unsupported proxy scheme {scheme}:// (use http://, https:// or socks5://)"
            )
        if scheme.startswith("socks") and not isinstance(
            getattr(niquests.adapters, "AsyncSOCKSProxyManager", None), type
        ):
            raise ConfigurationError(
                "SOCKS proxies with backend 'niquests' need python-socks: pip install "
                "'niquests[socks]', or use backend='curl'"
            )
        return {"http": proxy, "https": proxy}

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        try:
            url = build_url(config.url, config.params)
            body, content_type = encode_body(config)
            headers = outgoing_headers(config, content_type)
            proxies = self._proxies(config.proxy)
            timeouts = config.timeouts
            http2 = self._http2_enabled and config.http2
            session = await self._session_for((config.verify_ssl, config.max_redirects, http2))
            # (None, None) and not None: niquests puts a 30 s default on a missing timeout.
            limits = (None, None) if timeouts is None else (timeouts.connect, timeouts.read)
            work = self._exchange(session, config, url, body, headers, proxies, limits)
            total = None if timeouts is None else timeouts.total
            if total is None:
                return await work
            try:
                return await asyncio.wait_for(work, total)
            except asyncio.TimeoutError as exc:
                raise _TotalTimeout() from exc
        except Exception as exc:  # asyncio.CancelledError is a BaseException: it passes
            self._fail(exc, config)

    async def _exchange(
        self,
        session: _Session,
        config: RequestConfig,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        proxies: dict[str, str] | None,
        limits: tuple[float | None, float | None],
    ) -> NormalizedResponse:
        started = time.monotonic()
        resp = await session.request(
            config.method,
            url,
            data=body,
            headers=headers,
            timeout=limits,
            allow_redirects=config.follow_redirects,
            proxies=proxies,
            verify=config.verify_ssl,
            stream=True,
        )
        try:
            if config.stream or config.max_body_size is not None or resp.headers.get(
                "Content-Encoding"
            ):
                content = await self._read_stream(resp, config)
            else:
                content = await resp.content or b""
        finally:
            await resp.close()
        raw = resp.raw
        return NormalizedResponse(
            resp.status_code or 0,
            [] if raw is None else list(raw.headers.items()),  # repeated headers kept apart
            content,
            url=resp.url or url,
            http_version=None if raw is None else _VERSIONS.get(raw.version),
            elapsed=time.monotonic() - started,
        )

    async def _read_stream(self, resp: Any, config: RequestConfig) -> bytes:
        on_chunk = config.on_chunk if config.stream else None
        encoding = resp.headers.get("Content-Encoding")
        if encoding:  # urllib3-future inflates a zstd frame whole: decode raw, bounded
            return await self._read_decoded(resp, config, on_chunk, encoding)
        if on_chunk is None:
            # Bounded reads, so that a decompression bomb is caught a chunk at a time.
            parts: list[bytes] = []
            size, cap = 0, config.max_body_size
            async for chunk in await resp.iter_content(_CHUNK):
                size += len(chunk)
                if cap is not None and size > cap:
                    raise body_too_large(cap, self.name, config.url)
                parts.append(chunk)
            return b"".join(parts)
        # A negative size: each chunk as soon as it arrives (urllib3-future's async read).
        chunks = await resp.iter_content(-1)
        async for chunk in chunks:
            await deliver_chunk(on_chunk, chunk, self.name, config.url)
        return b""

    async def _read_decoded(
        self,
        resp: Any,
        config: RequestConfig,
        on_chunk: Callable[[bytes], object] | None,
        encoding: str,
    ) -> bytes:
        limit = config.max_body_size if on_chunk is None else None
        decoder = BoundedDecoder(encoding, limit, backend_name=self.name, url=config.url)
        if on_chunk is None:
            parts: list[bytes] = []
            async for chunk in await resp.iter_raw(_CHUNK):
                parts.extend(decoder.feed(chunk))
            parts.extend(decoder.flush())
            return b"".join(parts)
        async for chunk in await resp.iter_raw(-1):
            for piece in decoder.feed(chunk):
                await deliver_chunk(on_chunk, piece, self.name, config.url)
        for piece in decoder.flush():
            await deliver_chunk(on_chunk, piece, self.name, config.url)
        return b""

    # -- errors ----------------------------------------------------------------------------
    def _fail(self, exc: Exception, config: RequestConfig) -> NoReturn:
        if isinstance(exc, FastRequestsError):
            raise exc
        cause = exc.__cause__ if isinstance(exc, _TotalTimeout) else exc
        raise self._map_error(exc, config) from (cause or exc)

    def _map_error(self, exc: BaseException, config: RequestConfig) -> FastRequestsError:
        """The fastreq exception for a niquests / urllib3-future / OS error."""
        if isinstance(exc, FastRequestsError):
            return exc
        errors = niquests.exceptions
        message = describe(exc)
        cls: type[BackendError]
        if isinstance(exc, (_TotalTimeout, TimeoutError)):
            cls = RequestTimeoutError
            total = None if config.timeouts is None else config.timeouts.total
            message = f"request exceeded its total timeout of {total} s"
        elif isinstance(exc, errors.TooManyRedirects):
            cls = TooManyRedirectsError
            message = f"more than {config.max_redirects} redirects"
        elif isinstance(exc, errors.ProxyError):
            cls = ProxyError
        elif isinstance(exc, errors.SSLError):
            cls = TLSError
        elif isinstance(exc, errors.ConnectTimeout):
            cls = ConnectTimeoutError
        elif isinstance(exc, errors.ReadTimeout):
            cls = ReadTimeoutError
        elif isinstance(exc, errors.InvalidSchema) and "SOCKS" in str(exc):
            return ConfigurationError(f"SOCKS proxy support is missing: {message}")
        elif isinstance(exc, errors.InvalidHeader) and is_response_parse_error(
            exc, _urllib3.exceptions
        ):
            cls = ProtocolError  # a malformed response head (conflicting lengths, NUL...)
        elif isinstance(exc, ValueError) and isinstance(exc, errors.RequestException):
            # MissingSchema, InvalidSchema, InvalidURL, InvalidHeader, InvalidProxyURL
            return ValidationError(f"invalid request for {config.url}: {message}")
        elif isinstance(exc, errors.ContentDecodingError):
            cls = ResponseDecodeError
        elif isinstance(exc, errors.ChunkedEncodingError):
            cls = ProtocolError
        elif isinstance(exc, errors.ConnectionError):
            cls = connection_error_class(exc, _urllib3.exceptions)
        elif isinstance(exc, _urllib3.exceptions.HTTPError):  # raised past niquests' wrappers
            cls = urllib3_error_class(exc, _urllib3.exceptions)
        elif isinstance(exc, ssl.SSLError):
            cls = TLSError
        else:
            cls = TransportError
        return cls(message, backend_name=self.name, url=config.url)


