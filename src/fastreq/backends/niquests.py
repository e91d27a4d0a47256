"""The niquests backend: ``niquests.AsyncSession``, async native, HTTP/2 over TLS.

HTTP/2 is negotiated by ALPN on https:// URLs (plain http:// stays HTTP/1.1); HTTP/3 is off
unless ``disable_http3=False`` is passed. niquests only has session-wide TLS verification, so
the backend keeps one session per (verify_ssl, http2). Redirects are followed by this backend,
not niquests: one request per hop, built by :mod:`fastreq.backends._redirects`.
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
from fastreq.backends._niquests_session import NiquestsSession
from fastreq.backends._redirects import (
    DRAIN_LIMIT,
    REDIRECT_CODES,
    RedirectChain,
    location_text,
)
from fastreq.backends._urllib3_errors import (
    connection_error_class,
    is_request_rejected,
    is_response_parse_error,
    proxy_mapping,
    stale_connection_retry,
    urllib3_error_class,
)
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
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
    TransportError,
    ValidationError,
)

__all__ = ["NiquestsBackend"]

_CHUNK = 64 * 1024
_VERSIONS = {10: "HTTP/1.0", 11: "HTTP/1.1", 20: "HTTP/2", 30: "HTTP/3"}
_HAS_INCOMING_COOKIES = (
    "allow_incoming_cookies" in inspect.signature(niquests.AsyncSession.__init__).parameters
)
_SessionKey = tuple[bool, bool]  # verify_ssl, http2


class _TotalTimeout(Exception):
    """The request ran past ``Timeout.total``."""


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
        self._sessions: dict[_SessionKey, NiquestsSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return "niquests"

    def supports_http2(self) -> bool:
        """``True`` unless built with ``http2_enabled=False``."""
        return self._http2_enabled

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> NiquestsBackend:
        await self._session_for((True, self._http2_enabled))
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

    async def _session_for(self, key: _SessionKey) -> NiquestsSession:
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
            verify, http2 = key
            # By default: resend an idempotent request once when its reused connection died
            # before any response; nothing else (fastreq's policy does the real retries).
            retries = stale_connection_retry(_urllib3.Retry, _urllib3.exceptions)
            options = {"retries": retries, **self._options, "disable_http2": not http2}
            session = NiquestsSession(**options)
            session.trust_env = False  # fastreq decides proxies itself
            session.verify = verify
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self._sessions[key] = session
        return session

    # -- sending ---------------------------------------------------------------------------
    def _proxies(self, proxy: str | None) -> dict[str, str] | None:
        return proxy_mapping(
            proxy,
            socks_ok=isinstance(getattr(niquests.adapters, "AsyncSOCKSProxyManager", None), type),
            socks_hint="SOCKS proxies with backend 'niquests' need python-socks: pip install "
                       "'niquests[socks]', or use backend='curl'",
        )

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        try:
            proxies = self._proxies(config.proxy)
            timeouts = config.timeouts
            http2 = self._http2_enabled and config.http2
            session = await self._session_for((config.verify_ssl, http2))
            # (None, None) and not None: niquests puts a 30 s default on a missing timeout.
            limits = (None, None) if timeouts is None else (timeouts.connect, timeouts.read)
            work = self._exchange(session, config, proxies, limits)
            total = None if timeouts is None else timeouts.total
            if total is None:
                return await work
            try:  # the whole exchange, every hop
                return await asyncio.wait_for(work, total)
            except asyncio.TimeoutError as exc:
                raise _TotalTimeout() from exc
        except Exception as exc:  # asyncio.CancelledError is a BaseException: it passes
            self._fail(exc, config)

    async def _exchange(
        self,
        session: NiquestsSession,
        config: RequestConfig,
        proxies: dict[str, str] | None,
        limits: tuple[float | None, float | None],
    ) -> NormalizedResponse:
        started = time.monotonic()
        resp = await self._send(session, config, proxies, limits)
        try:
            if resp.status_code in REDIRECT_CODES and config.follow_redirects:
                resp, config = await self._follow(session, config, resp, proxies, limits)
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
            url=resp.url or build_url(config.url, config.params),
            http_version=None if raw is None else _VERSIONS.get(raw.version),
            elapsed=time.monotonic() - started,
        )

    async def _send(
        self,
        session: NiquestsSession,
        config: RequestConfig,
        proxies: dict[str, str] | None,
        limits: tuple[float | None, float | None],
    ) -> Any:
        """One hop, its body unread (niquests never follows a redirect: see NiquestsSession)."""
        body, content_type = encode_body(config)
        return await session.request(
            config.method,
            build_url(config.url, config.params),
            data=body,
            headers=outgoing_headers(config, content_type),
            timeout=limits,
            allow_redirects=False,
            proxies=proxies,
            verify=config.verify_ssl,
            stream=True,
        )

    async def _follow(
        self,
        session: NiquestsSession,
        config: RequestConfig,
        resp: Any,
        proxies: dict[str, str] | None,
        limits: tuple[float | None, float | None],
    ) -> tuple[Any, RequestConfig]:
        """The final response of a redirected request (body unread) and its hop's config."""
        chain = RedirectChain(config, self.name)
        try:
            while resp.status_code in REDIRECT_CODES:
                location = resp.headers.get("Location")
                if location is None:
                    break
                # the total timeout is wait_for's: no elapsed counted here
                hop = chain.next_config(config, NormalizedResponse(
                    resp.status_code, {"location": location_text(location)}, url=resp.url or ""
                ))
                if hop is None:
                    break
                await _discard(resp)
                config = hop
                resp = await self._send(session, config, proxies, limits)
        except BaseException:
            await resp.close()  # closing a closed response again is harmless
            raise
        return resp, config

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
        elif (
            isinstance(exc, ValueError) and isinstance(exc, errors.RequestException)
        ) or is_request_rejected(exc):
            # MissingSchema, InvalidSchema, InvalidURL, InvalidHeader, InvalidProxyURL; h11
            # refusing an illegal method or header (never sent)
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


async def _discard(resp: Any) -> None:
    """Drop the body of a redirect being followed and close ``resp``: read raw (never
    decoded) up to ``DRAIN_LIMIT`` bytes so that the connection is reused; past that, or
    on a read error (the body is dropped anyway), the connection is closed instead."""
    size = 0
    try:
        async for chunk in await resp.iter_raw(_CHUNK):
            size += len(chunk)
            if size > DRAIN_LIMIT:
                break
    except (niquests.exceptions.RequestException, _urllib3.exceptions.HTTPError, OSError):
        pass
    finally:
        await resp.close()
