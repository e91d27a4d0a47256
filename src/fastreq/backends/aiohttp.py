"""The aiohttp backend: one ``aiohttp.ClientSession`` with an unlimited connection pool.

HTTP/1.1 only. aiohttp has no HTTP/2: ``supports_http2()`` is ``False`` and the ``http2``
flag (which defaults to ``True`` everywhere in fastreq) is ignored without a warning.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import sys
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.http_exceptions import HttpProcessingError

from fastreq.backends._aiohttp_deadline import Deadlines
from fastreq.backends._aiohttp_response import make_response
from fastreq.backends._aiohttp_session import (
    DIRECT_HEADERS,
    FRESH,
    NO_TIMEOUT,
    PoolConnector,
    direct_headers,
    request_class,
    timeout_plan,
)
from fastreq.backends._common import (
    IDEMPOTENT_METHODS,
    build_url,
    close_on,
    deliver_chunk,
    describe,
    encode_body,
    outgoing_headers,
)
from fastreq.backends._decode import read_decoded, supported_encodings
from fastreq.backends._redirects import REDIRECT_CODES as _REDIRECT_CODES
from fastreq.backends._redirects import RedirectChain
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    FastRequestsError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    RequestTimeoutError,
    TLSError,
    TransportError,
    ValidationError,
)
from fastreq.timeouts import Timeout

__all__ = ["AiohttpBackend"]

# Aborting SSL transports that never finish closing is only needed on Pythons with the
# asyncio leak (fixed in 3.12.8 / 3.13.1); aiohttp warns when asked for it elsewhere.
_PY = sys.version_info
_NEEDS_CLEANUP_CLOSED = _PY < (3, 12, 8) or (3, 13, 0) <= _PY < (3, 13, 1)
_PROXY_SCHEMES = frozenset({"http", "https"})
# aiohttp would add ``Content-Type: application/octet-stream`` to raw byte bodies; the
# other backends send no Content-Type the caller did not ask for. Passed per request, only
# with a body: as a session default aiohttp would build two header multidicts per request.
_SKIP_AUTO_HEADERS = ("Content-Type",)
# aiohttp warns (ResourceWarning) about raw bytes bodies above 1 MiB; a BytesIO of the same
# bytes is written in chunks, yielding to the loop (a 307/308 hop encodes the body anew).
_LARGE_BODY = 1 << 20


_HTTP_VERSIONS: dict[Any, str] = {
    aiohttp.HttpVersion11: "HTTP/1.1",
    aiohttp.HttpVersion10: "HTTP/1.0",
}


_UNSET: Any = object()
_Plan = tuple[aiohttp.ClientTimeout, 'aiohttp.ClientTimeout | None']
_request_class = request_class  # kept importable here (tests use this name)


def _http_version(version: Any) -> str | None:
    if version is None:
        return None
    major, minor = version
    return "HTTP/2" if major == 2 else f"HTTP/{major}.{minor}"


class AiohttpBackend(Backend):
    """Requests through aiohttp (HTTP/1.1, async native, fast on loopback and LANs).

    aiohttp cannot speak HTTP/2, so :meth:`supports_http2` is ``False`` and ``http2=True``
    (the default) quietly uses HTTP/1.1. SOCKS proxies are refused with
    :class:`~fastreq.exceptions.ConfigurationError` (use ``backend="curl"``). Extra keyword
    arguments go to ``aiohttp.TCPConnector``.

    Example::

        from fastreq.backends.aiohttp import AiohttpBackend
        from fastreq.backends.base import RequestConfig

        async with AiohttpBackend() as backend:
            response = await backend.request(RequestConfig("https://example.com/"))
            print(response.status_code, response.http_version)   # 200 HTTP/1.1
    """

    def __init__(self, http2_enabled: bool = True, **library_options: Any) -> None:
        super().__init__(http2_enabled)
        self._connector_options = library_options
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        #: the last ``RequestConfig.timeout`` seen and its timeout_plan()
        self._last_timeout: tuple[Any, _Plan] = (_UNSET, (NO_TIMEOUT, None))

    @property
    def name(self) -> str:
        return "aiohttp"

    def supports_http2(self) -> bool:
        """Always ``False``: aiohttp speaks HTTP/1.1 only."""
        return False

    async def __aenter__(self) -> AiohttpBackend:
        await self._get_session()
        return self

    async def close(self) -> None:
        session, loop, deadlines = self._session, self._loop, self._deadlines
        self._session = self._loop = self._deadlines = None
        if session is not None:

            async def close_all() -> None:
                if deadlines is not None:
                    deadlines.close()
                await session.close()

            await close_on(loop, close_all)

    async def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop:
            return session
        if session is not None:
            if self._loop is not None and not self._loop.is_closed():
                raise ConfigurationError(
                    "this AiohttpBackend is in use on another event loop; use one backend "
                    "per loop (or close() it first)"
                )
            await self.close()  # its loop is gone: drop the session, start afresh
        options: dict[str, Any] = {
            "limit": 0,
            "limit_per_host": 0,
            "enable_cleanup_closed": _NEEDS_CLEANUP_CLOSED,
        }
        options.update(self._connector_options)
        try:
            connector = PoolConnector(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"aiohttp backend: bad connector option ({exc})") from exc
        self._session = session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # fastreq's client layer owns cookies
            trust_env=False,  # fastreq decides proxies itself
            # Bodies are decoded by _decode's bounded decoder: aiohttp's inflates a whole
            # read at once, has no size cap and decodes only one of chained encodings.
            auto_decompress=False,
            request_class=request_class(supported_encodings()),
            timeout=NO_TIMEOUT,
        )
        if hasattr(session, "_retry_connection"):
            # aiohttp resends an idempotent request once after a disconnect, even on a fresh
            # connection; request() resends only when the connection was a reused one.
            session._retry_connection = False
        self._loop = loop
        self._deadlines = Deadlines(loop)
        return session

    def _proxy(self, proxy: str | None) -> str | None:
        if proxy is None:
            return None
        scheme = proxy.partition("://")[0].lower()
        if scheme not in _PROXY_SCHEMES:
            raise ConfigurationError(
                f"the aiohttp backend supports http:// and https:// proxies only, not "
                f"{scheme}://; use backend='curl' for SOCKS proxies"
            )
        return proxy

    async def request(
        self, config: RequestConfig, _chain: RedirectChain | None = None
    ) -> NormalizedResponse:
        # aiohttp's own following is off: it would keep a POST's Content-Type on the GET
        # after a 303 (and more); fastreq's policy builds each hop (``_chain``: the hops so
        # far), the body of a redirect to follow is never read. One coroutine per hop.
        # The hot path: a plain GET (no params, body, cookies or proxy; maybe a User-Agent)
        # costs only attribute reads here; everything else goes through the shared encoders.
        url = config.url
        if config.params:
            url = build_url(url, config.params)
        if config.data is None and config.json is None:
            body: bytes | None = None
            headers = config.headers
            if config.cookies:
                headers = outgoing_headers(config, None)
        else:
            body, content_type = encode_body(config)
            headers = outgoing_headers(config, content_type)
        proxy = config.proxy
        if proxy is not None:
            proxy = self._proxy(proxy)
        if config.timeout is self._last_timeout[0]:  # a batch's configs share one value
            timeout, lean_timeout = self._last_timeout[1]
        else:
            try:
                plan = timeout_plan(config.timeout)
            except TypeError:  # unhashable, so not a valid timeout: let coerce() say why
                Timeout.coerce(config.timeout)
                raise
            self._last_timeout = (config.timeout, plan)  # immutable values only
            timeout, lean_timeout = plan
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = await self._get_session()
        direct = None
        if headers:  # the usual ones, a rotated User-Agent alone, need no check
            direct = (headers if len(headers) == 1 and "User-Agent" in headers
                      else direct_headers(headers))
        deadlines = self._deadlines
        token = None
        if lean_timeout is not None and deadlines is not None:
            token = deadlines.add(timeout.total or 0.0)  # set: the total is long
            if token is not None:
                timeout = lean_timeout
        start = perf_counter()
        try:
            # session._request() and the release below are what ``async with
            # session.request(...)`` does, without its four extra coroutines per request.
            for resend in (False, True):
                FRESH.set(False)
                DIRECT_HEADERS.set(direct)
                try:
                    resp = await session._request(
                        config.method,
                        url,
                        data=body if body is None or len(body) <= _LARGE_BODY
                        else io.BytesIO(body),
                        headers=None if direct is not None else headers,
                        skip_auto_headers=None if body is None else _SKIP_AUTO_HEADERS,
                        allow_redirects=False,  # request() follows them
                        proxy=proxy,
                        ssl=config.verify_ssl,
                        timeout=timeout,
                    )
                    break
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    # A keep-alive connection the server dropped as it was reused: sent
                    # once more on a fresh one, idempotent methods only, never twice.
                    if (resend or FRESH.get() or config.method not in IDEMPOTENT_METHODS
                            or isinstance(exc, aiohttp.ClientConnectorError)):
                        raise
            try:
                got = resp.headers
                if (config.follow_redirects and resp.status in _REDIRECT_CODES
                        and hdrs.LOCATION in got):
                    # followed below: the body of a redirect is never read nor streamed
                    redirect = make_response(resp.status, got, b"", url, None,
                                             perf_counter() - start)
                else:
                    encoding = got.get(hdrs.CONTENT_ENCODING)  # istr: the fast lookup
                    if encoding:  # decoded here, bounded (auto_decompress is off)
                        content = await read_decoded(
                            resp.content.iter_any(), encoding, config, self.name
                        )
                    elif config.stream:
                        content = await self._read_stream(resp, config)
                    elif (cap := config.max_body_size) is not None and not (
                        (length := got.get(hdrs.CONTENT_LENGTH)) is not None
                        and length.isdigit() and int(length) <= cap
                    ):  # too long, or no length given: read counting, up to the cap
                        content = await read_decoded(
                            resp.content.iter_any(), "identity", config, self.name
                        )
                    else:
                        content = await resp.read()
                    response = make_response(
                        resp.status,
                        got,  # a Mapping: every repeated header read through items()
                        content,
                        url,  # redirects are followed hop by hop
                        _HTTP_VERSIONS.get(resp.version) or _http_version(resp.version),
                        perf_counter() - start,
                    )
                    return response if _chain is None else _chain.finish(response)
            finally:
                resp.release()
                await resp.wait_for_close()
        except FastRequestsError:
            raise
        except asyncio.CancelledError:
            if token is None or deadlines is None or not deadlines.timed_out(token):
                raise
            raise RequestTimeoutError(
                f"request exceeded its total timeout ({describe(asyncio.TimeoutError())})",
                backend_name=self.name, url=config.url,
            ) from None
        except Exception as exc:
            raise self._map_error(exc, config) from exc
        finally:
            if token is not None:
                deadlines.discard(token)  # type: ignore[union-attr]  # set with token
        return await self._follow(config, redirect, _chain)

    async def _follow(self, config: RequestConfig, response: NormalizedResponse,
                      chain: RedirectChain | None) -> NormalizedResponse:
        if chain is None:
            chain = RedirectChain(config, self.name)
        hop = chain.next_config(config, response)
        if hop is None:
            return chain.finish(response)
        return await self.request(hop, chain)

    async def _read_stream(self, resp: aiohttp.ClientResponse, config: RequestConfig) -> bytes:
        on_chunk = config.on_chunk
        if on_chunk is None:
            return b"".join([chunk async for chunk in resp.content.iter_any()])
        async for chunk in resp.content.iter_any():
            await deliver_chunk(on_chunk, chunk, self.name, config.url)
        return b""

    def _map_error(self, exc: BaseException, config: RequestConfig) -> FastRequestsError:
        """The fastreq exception for an aiohttp (or asyncio / OS) error."""
        message = describe(exc)
        if isinstance(exc, ValueError) and not isinstance(exc, ssl.SSLError):
            # Bad URL, header value with a newline... (also InvalidUrlClientError); a bad
            # redirect URL is _redirects' ProtocolError (aiohttp never follows one here)
            return ValidationError(f"invalid request for {config.url}: {message}")
        cls: type[BackendError]
        if isinstance(exc, (aiohttp.ClientHttpProxyError, aiohttp.ClientProxyConnectionError)):
            cls = ProxyError
        elif isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)):
            cls = TLSError
        elif isinstance(exc, aiohttp.ConnectionTimeoutError):
            cls = ConnectTimeoutError
        elif isinstance(exc, aiohttp.ServerTimeoutError):  # SocketTimeoutError: sock_read
            cls = ReadTimeoutError
        elif isinstance(exc, asyncio.TimeoutError):  # aiohttp's total
            cls = RequestTimeoutError
            message = f"request exceeded its total timeout ({message})"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            cls = ConnectError
        elif isinstance(exc, aiohttp.NonHttpUrlClientError):
            return ValidationError(f"not an http(s) URL: {config.url}")
        elif isinstance(
            exc,
            (
                aiohttp.ClientPayloadError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientResponseError,
                HttpProcessingError,
                aiohttp.ClientOSError,  # reset mid-exchange (connecting was handled above)
                ConnectionError,
            ),
        ):
            cls = ProtocolError
        elif isinstance(exc, ssl.SSLError):
            cls = TLSError
        else:
            cls = TransportError
        return cls(message, backend_name=self.name, url=config.url)
