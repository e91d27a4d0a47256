"""The httpx backend: HTTP/2 through ``h2``, one ``httpx.AsyncClient`` per (verify, proxy, http2).

httpx sets TLS verification and the proxy per client, not per request, so each combination
a request asks for gets its own client; a request never shares connections with another
whose ``verify_ssl`` or ``proxy`` differ. Redirects are followed by this backend, not httpx:
one request per hop, built by :mod:`fastreq.backends._redirects`.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ssl
import time
import urllib.request
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import httpx

from fastreq.backends._common import (
    IDEMPOTENT_METHODS,
    body_too_large,
    build_url,
    close_on,
    deliver_chunk,
    describe,
    encode_body,
    outgoing_headers,
)
from fastreq.backends._decode import read_decoded
from fastreq.backends._redirects import DRAIN_LIMIT, REDIRECT_CODES, RedirectChain
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
    ConnectError,
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
from fastreq.timeouts import Timeout, TimeoutLike

__all__ = ["HttpxBackend"]

_ClientKey = tuple[bool, str | None, bool]  # (verify, proxy, http2)
_PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
_CHUNK = 64 * 1024
# fastreq bounds concurrency itself: no connection cap, keep every idle connection (5 s).
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=5)


class _NoCookieJar(http.cookiejar.CookieJar):
    """Stores nothing: fastreq's client layer owns cookies, the backend must not keep any."""

    def extract_cookies(self, response: Any, request: urllib.request.Request) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def _httpx_timeout(value: TimeoutLike) -> tuple[httpx.Timeout, float | None]:
    """httpx's per-phase limits and the total for a raw ``RequestConfig.timeout`` (cached)."""
    try:
        return _cached_httpx_timeout(value)
    except TypeError:  # unhashable, so not a valid timeout: let coerce() say why
        Timeout.coerce(value)
        raise


@lru_cache(maxsize=64, typed=True)  # typed: True must not hit the entry of 1
def _cached_httpx_timeout(value: TimeoutLike) -> tuple[httpx.Timeout, float | None]:
    timeout = Timeout.coerce(value)
    if timeout is None:
        return httpx.Timeout(None), None
    # fastreq has no write timeout; a stalled upload gets the read limit (and total).
    limits = httpx.Timeout(
        connect=timeout.connect, read=timeout.read, write=timeout.read, pool=timeout.pool
    )
    return limits, timeout.total


def _caused_by(exc: BaseException, test: Callable[[BaseException], bool]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx error <- httpcore error <- ssl.SSLError, h11 / h2 error
        if seen is None:
            return False
        if test(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _has_ssl_cause(exc: BaseException) -> bool:
    return _caused_by(exc, lambda e: isinstance(e, ssl.SSLError))


def _answered(exc: BaseException) -> bool:
    """Whether the server sent something that h11 / h2 could not parse (the error comes
    from either underneath), rather than closing or resetting the connection silently."""
    return _caused_by(exc, lambda e: type(e).__module__.partition(".")[0] in ("h11", "h2"))


class _ConnectionTrace:
    """httpcore's ``trace`` extension for one attempt: whether it opened a connection
    (``connection.connect_tcp``, ``socks.connect_tcp``...) instead of reusing one."""

    __slots__ = ("opened",)

    def __init__(self) -> None:
        self.opened = False

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if ".connect_" in name:
            self.opened = True


class HttpxBackend(Backend):
    """Requests through httpx, with HTTP/2 negotiated by ALPN on https:// URLs.

    HTTP/2 needs the ``h2`` package (``pip install 'fastreq[httpx]'`` brings it); SOCKS
    proxies need ``socksio`` (``pip install 'httpx[socks]'``), otherwise a
    :class:`~fastreq.exceptions.ConfigurationError` says so. Extra keyword arguments go to
    every ``httpx.AsyncClient`` this backend creates.

    Example::

        from fastreq.backends.httpx import HttpxBackend
        from fastreq.backends.base import RequestConfig

        async with HttpxBackend(http2_enabled=True) as backend:
            response = await backend.request(RequestConfig("https://example.com/"))
            print(response.status_code, response.http_version)   # 200 HTTP/2
    """

    def __init__(self, http2_enabled: bool = True, **library_options: Any) -> None:
        super().__init__(http2_enabled)
        self._client_options = library_options
        self._clients: dict[_ClientKey, httpx.AsyncClient] = {}
        self._ssl_contexts: dict[tuple[bool, str], ssl.SSLContext] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return "httpx"

    def supports_http2(self) -> bool:
        """``True``: HTTP/2 is used on https:// URLs when the server offers it."""
        return True

    async def __aenter__(self) -> HttpxBackend:
        await self._client((True, None, self._http2_enabled))
        return self

    async def close(self) -> None:
        clients, loop = list(self._clients.values()), self._loop
        self._clients.clear()
        self._loop = None
        for client in clients:
            await close_on(loop, client.aclose)

    # -- clients ---------------------------------------------------------------------------
    def _ssl_context(self, verify: bool, use: str) -> ssl.SSLContext:
        # Loading the CA bundle costs milliseconds, so contexts are shared between clients;
        # httpcore sets ALPN on the context per connection, hence one per ``use``
        # ("h1", "h2", "proxy-h1", "proxy-h2").
        key = (verify, use)
        ctx = self._ssl_contexts.get(key)
        if ctx is None:
            ctx = self._ssl_contexts[key] = httpx.create_ssl_context(verify=verify, trust_env=False)
        return ctx

    async def _client(self, key: _ClientKey) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._loop is not loop and self._clients:
            if self._loop is not None and not self._loop.is_closed():
                raise ConfigurationError(
                    "this HttpxBackend is in use on another event loop; use one backend per "
                    "loop (or close() it first)"
                )
            await self.close()  # their loop is gone: drop the clients, start afresh
        self._loop = loop
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._new_client(*key)
        return client

    def _new_client(self, verify: bool, proxy: str | None, http2: bool) -> httpx.AsyncClient:
        proxy_arg: httpx.Proxy | None = None
        try:
            if proxy is not None:
                scheme = proxy.partition("://")[0].lower()
                if scheme not in _PROXY_SCHEMES:
                    raise ConfigurationError(
                        f"the httpx backend supports http, https, socks5 and socks5h proxies, "
                        f"not {scheme}://"
                    )
                use = "proxy-h2" if http2 else "proxy-h1"
                proxy_ctx = self._ssl_context(verify, use) if scheme == "https" else None
                proxy_arg = httpx.Proxy(proxy, ssl_context=proxy_ctx)
            options: dict[str, Any] = {
                "verify": self._ssl_context(verify, "h2" if http2 else "h1"),
                "http2": http2,
                "proxy": proxy_arg,
                "trust_env": False,  # fastreq decides proxies itself
                "limits": _LIMITS,
                "timeout": None,
                "follow_redirects": False,  # redirects are followed in _exchange
                "cookies": _NoCookieJar(),
            }
            options.update(self._client_options)
            return httpx.AsyncClient(**options)
        except ImportError as exc:  # h2 or socksio missing
            hint = (
                "pip install 'httpx[socks]' or use backend='curl'"
                if proxy is not None and proxy.lower().startswith("socks")
                else "pip install 'httpx[http2]' or pass http2=False"
            )
            raise ConfigurationError(f"httpx backend: {exc} ({hint})") from exc
        except TypeError as exc:
            raise ConfigurationError(f"httpx backend: bad client option ({exc})") from exc
        except (ValueError, httpx.InvalidURL) as exc:
            raise ConfigurationError(f"httpx backend: invalid proxy ({describe(exc)})") from exc

    # -- requests --------------------------------------------------------------------------
    async def request(self, config: RequestConfig) -> NormalizedResponse:
        limits, total = _httpx_timeout(config.timeout)
        client = await self._client(
            (config.verify_ssl, config.proxy, self._http2_enabled and config.http2)
        )
        try:
            if total is None:
                return await self._exchange(client, config, limits)
            # httpx has no limit on the whole exchange: bound it (every hop) here.
            return await asyncio.wait_for(self._exchange(client, config, limits), total)
        except FastRequestsError:
            raise
        except Exception as exc:
            raise self._map_error(exc, config) from exc

    async def _exchange(
        self, client: httpx.AsyncClient, config: RequestConfig, limits: httpx.Timeout
    ) -> NormalizedResponse:
        """Send ``config``, following redirects hop by hop (every hop's client and limits
        are the first's: a redirect changes neither verify_ssl, proxy nor timeouts)."""
        start = time.perf_counter()
        response = await self._send(client, config, limits)
        chain: RedirectChain | None = None
        try:
            while response.status_code in REDIRECT_CODES and config.follow_redirects:
                location = response.headers.get("location")
                if location is None:
                    break
                if chain is None:
                    chain = RedirectChain(config, self.name)
                # the total timeout is wait_for's: no elapsed counted here
                hop = chain.next_config(config, NormalizedResponse(
                    response.status_code, {"location": location}, url=str(response.url)
                ))
                if hop is None:
                    break
                await _discard(response)
                config = hop
                response = await self._send(client, config, limits)
            content = await self._read(response, config)
        finally:
            await response.aclose()
        return NormalizedResponse(
            response.status_code,
            response.headers.multi_items(),
            content,
            url=str(response.url),
            http_version=response.http_version,
            elapsed=time.perf_counter() - start,
        )

    @staticmethod
    async def _send(
        client: httpx.AsyncClient, config: RequestConfig, limits: httpx.Timeout
    ) -> httpx.Response:
        """One hop, its body unread."""
        body, content_type = encode_body(config)
        request = client.build_request(
            config.method,
            build_url(config.url, config.params),
            content=body,
            headers=outgoing_headers(config, content_type),
            timeout=limits,
        )
        trace = request.extensions["trace"] = _ConnectionTrace()
        try:
            return await client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # A keep-alive connection reused from the pool that the server dropped before
            # any response byte (as it was reused): resend an idempotent request once, on
            # a fresh connection; never a POST, nor a request that failed on a connection
            # of its own (that is this input's error: fastreq's retry policy decides).
            if trace.opened or request.method not in IDEMPOTENT_METHODS or _answered(exc):
                raise
            request.extensions["trace"] = _ConnectionTrace()
            return await client.send(request, stream=True)

    async def _read(self, response: httpx.Response, config: RequestConfig) -> bytes:
        encoding = response.headers.get("content-encoding")
        if encoding:
            # httpx would inflate each network read whole: decode the raw body bounded.
            return await read_decoded(response.aiter_raw(_CHUNK), encoding, config, self.name)
        on_chunk = config.on_chunk
        if not config.stream or on_chunk is None:
            cap = config.max_body_size
            if cap is None:
                return await response.aread()
            parts: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise body_too_large(cap, self.name, config.url)
                parts.append(chunk)
            return b"".join(parts)
        async for chunk in response.aiter_bytes():
            await deliver_chunk(on_chunk, chunk, self.name, config.url)
        return b""

    def _map_error(self, exc: BaseException, config: RequestConfig) -> FastRequestsError:
        """The fastreq exception for an httpx (or asyncio) error."""
        message = describe(exc)
        if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
            return ValidationError(f"invalid request for {config.url}: {message}")
        cls: type[BackendError]
        if isinstance(exc, httpx.ConnectTimeout):
            cls = ConnectTimeoutError
        elif isinstance(exc, httpx.ReadTimeout):
            cls = ReadTimeoutError
        elif isinstance(exc, httpx.PoolTimeout):
            cls = PoolTimeoutError
        elif isinstance(exc, httpx.TimeoutException):  # WriteTimeout
            cls = RequestTimeoutError
        elif isinstance(exc, asyncio.TimeoutError):  # our wait_for on ``total``
            cls = RequestTimeoutError
            message = f"request exceeded its total timeout ({message})"
        elif isinstance(exc, httpx.ProxyError):
            cls = ProxyError
        elif isinstance(exc, httpx.ConnectError) and _has_ssl_cause(exc):
            cls = TLSError
        elif isinstance(exc, httpx.ConnectError):
            # Through a proxy, the only connection httpx opens itself is to the proxy.
            cls = ProxyError if config.proxy is not None else ConnectError
        elif isinstance(exc, httpx.DecodingError):
            cls = ResponseDecodeError
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            cls = ProtocolError  # a malformed answer, or the connection dropped mid-exchange
        else:
            cls = TransportError
        return cls(message, backend_name=self.name, url=config.url)


async def _discard(response: httpx.Response) -> None:
    """Drop the body of a redirect being followed and close ``response``: read raw (never
    decoded) up to ``DRAIN_LIMIT`` bytes so that the connection is reused; past that, or
    on a read error (the body is dropped anyway), the connection is closed instead."""
    size = 0
    try:
        async for chunk in response.aiter_raw(_CHUNK):
            size += len(chunk)
            if size > DRAIN_LIMIT:
                break
    except httpx.TransportError:
        pass
    finally:
        await response.aclose()
