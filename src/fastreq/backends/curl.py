"""``backend="curl"``: fastreq's own engine on libcurl's multi interface (via ``pycurl``).

The fastest backend: libcurl does the HTTP work (keep-alive connection cache per host,
HTTP/2 multiplexing, gzip/deflate/brotli decoding, TLS) and the event loop only relays
socket readiness to it. See :mod:`fastreq.backends._curl_engine` for how the loop drives it.

Example::

    import asyncio
    from fastreq.backends.base import RequestConfig
    from fastreq.backends.curl import CurlBackend

    async def main() -> None:
        async with CurlBackend() as backend:
            response = await backend.request(RequestConfig("https://example.com/"))
            print(response.status_code, response.http_version, len(response.content))

    asyncio.run(main())

Notes on the mapping of :class:`~fastreq.backends.base.RequestConfig`:

- ``Timeout.connect`` -> ``CONNECTTIMEOUT_MS`` (DNS + TCP + TLS + proxy handshake),
  ``Timeout.total`` -> ``TIMEOUT_MS``. ``Timeout.read`` is approximated with libcurl's
  low-speed limit: the transfer is aborted when less than 1 byte/s arrives on average over
  ``ceil(read)`` whole seconds (libcurl checks once a second, so a stall is detected after
  ``ceil(read)`` to ``ceil(read) + 1`` s). ``Timeout.pool`` is not enforced (libcurl queues
  transfers waiting for a connection internally; a ``total`` limit covers that wait).
- Server cookies are never stored: libcurl's cookie engine stays off; ``cookies=`` is sent as
  a ``Cookie`` header.
- Environment proxies (``HTTP_PROXY``...) are ignored: only ``RequestConfig.proxy`` is used.
- A caller-set ``Accept-Encoding`` is sent verbatim and libcurl still decodes the encodings it
  supports (gzip, deflate, br), like the other backends; otherwise libcurl offers all of them.
  No ``Expect: 100-continue``, no User-Agent of its own (fastreq's layer sets one).
- Redirects are followed by this backend, not libcurl (``FOLLOWLOCATION`` stays off): each
  hop is a transfer of its own, built by :mod:`fastreq.backends._redirects` (credentials
  dropped on a change of origin, body dropped on a method change...). ``response.url`` is
  the URL of the last hop (the first with ``params``). A streamed request's ``on_chunk``
  sees only the final response's body.
- HTTP/2: ``CURL_HTTP_VERSION_2TLS`` (h2 via ALPN on https, HTTP/1.1 on http), multiplexing
  on. A cold burst to a new https origin shares the first connection without
  ``CURLOPT_PIPEWAIT`` (which would queue everything behind a slow first response on an
  HTTP/1.1 server): see ``Engine.gate``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pycurl

from fastreq.backends._common import build_url, with_implied_headers
from fastreq.backends._curl_engine import CLOSED_CODE, Engine
from fastreq.backends._curl_errors import callback_error, closed_error, curl_error
from fastreq.backends._curl_handle import Easy
from fastreq.backends._curl_options import (
    HAS_HTTP2,
    HAS_HTTP3,
    apply_all,
    set_headers,
    set_user_agent,
    split_user_agent,
)
from fastreq.backends._curl_response import last_block, make_response
from fastreq.backends._redirects import REDIRECT_CODES, RedirectChain
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import ConfigurationError, ValidationError

__all__ = ["CurlBackend"]

_URL = pycurl.URL
_RESPONSE_CODE = pycurl.RESPONSE_CODE
_TOTAL_TIME = pycurl.TOTAL_TIME
_FILESIZE_EXCEEDED: int = pycurl.E_FILESIZE_EXCEEDED
_REDIRECT_CODES = REDIRECT_CODES
_TOO_MANY_REDIRECTS = 47  # libcurl's CURLE_TOO_MANY_REDIRECTS: the code of the error
_CONTENT_TYPE = pycurl.CONTENT_TYPE
#: Content-Type value -> is JSON; a batch sees few distinct values (bounded all the same)
_JSON_TYPES: dict[str | None, bool] = {None: False, "": False}


def _skip_redirect_body(h: Easy, on_chunk: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """``on_chunk`` for a request that follows redirects: the body of a redirect that
    ``request()`` will follow (a 3xx with a Location) is not delivered, only the final one.

    Decided on the first chunk from the final header block libcurl has handed over (no
    ``getinfo`` inside a libcurl callback).
    """
    deliver: list[bool] = []

    def filtered(chunk: bytes) -> object:
        if not deliver:
            blob = last_block(h.hdrs)[0]
            status = blob.split(b" ", 2)[1:2]
            redirect = (
                bool(status) and status[0].isdigit() and int(status[0]) in _REDIRECT_CODES
                and b"\nlocation:" in blob.lower()
            )
            deliver.append(not redirect)
        return on_chunk(chunk) if deliver[0] else None

    return filtered


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    mime = content_type.partition(";")[0].strip().lower()
    is_json = mime == "application/json" or mime.endswith("+json")
    if len(_JSON_TYPES) < 256:
        _JSON_TYPES[content_type] = is_json
    return is_json


class CurlBackend(Backend):
    """fastreq's engine on libcurl's multi interface (``pip install fastreq[curl]``).

    - ``http2_enabled``: negotiate HTTP/2 over TLS (ALPN) and multiplex requests to a host
      over one connection; plain ``http://`` stays HTTP/1.1 with keep-alive.
    - ``max_host_connections``: cap on connections per host (0: no cap; extra transfers wait
      inside libcurl for a free connection).
    - ``ca_bundle``: a PEM file of CA certificates to trust instead of the default store.
    - ``http3``: try HTTP/3 (QUIC) for ``https://`` when libcurl was built with it.
    - ``poller``: ``"auto"`` (a private epoll set on Linux), ``"epoll"`` or ``"loop"`` (one
      loop reader/writer per socket); a tuning and testing knob.

    Example::

        async with CurlBackend(max_host_connections=8) as backend:
            r = await backend.request(RequestConfig("https://example.com/", timeout=10))
    """

    def __init__(
        self,
        http2_enabled: bool = True,
        *,
        max_host_connections: int = 0,
        ca_bundle: str | None = None,
        http3: bool = False,
        poller: str = "auto",
    ) -> None:
        super().__init__(http2_enabled)
        if max_host_connections < 0:
            raise ValidationError("max_host_connections must be >= 0 (0: no limit)")
        if poller not in ("auto", "epoll", "loop"):
            raise ValidationError(f"poller must be 'auto', 'epoll' or 'loop', got {poller!r}")
        self._max_host_connections = max_host_connections
        self._ca_bundle = ca_bundle
        self._http3 = http3 and HAS_HTTP3
        self._poller = poller
        self._h2 = http2_enabled and HAS_HTTP2
        self._engine: Engine | None = None

    @property
    def name(self) -> str:
        return "curl"

    def supports_http2(self) -> bool:
        """Whether the installed libcurl speaks HTTP/2."""
        return HAS_HTTP2

    # -- engine lifecycle ----------------------------------------------------------------
    def _start_engine(self, loop: asyncio.AbstractEventLoop) -> Engine:
        old = self._engine
        if old is not None:
            if old.loop.is_running() and not old.loop.is_closed():
                raise ConfigurationError(
                    "this CurlBackend is in use on another running event loop; "
                    "use one backend instance per event loop"
                )
            old.close()
        self._engine = Engine(
            loop,
            max_host_connections=self._max_host_connections,
            multiplex=self._http2_enabled,
            poller=self._poller,
        )
        return self._engine

    async def close(self) -> None:
        """Close every connection and handle; the next request starts a fresh engine."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is a coroutine
            loop = None
        if loop is engine.loop or engine.loop.is_closed() or not engine.loop.is_running():
            engine.close()
        else:  # owned by a loop running in another thread: close it there
            engine.loop.call_soon_threadsafe(engine.close)

    # -- one request ---------------------------------------------------------------------
    async def request(self, config: RequestConfig) -> NormalizedResponse:
        loop = asyncio.get_running_loop()
        engine = self._engine
        if engine is None or engine.loop is not loop:
            engine = self._start_engine(loop)
        chain: RedirectChain | None = None
        while True:  # one pass per hop: libcurl never follows redirects itself
            h = engine.acquire()
            try:
                url = self._configure(h, config)
            except BaseException:
                h.key = None
                engine.release(h)
                raise
            if self._h2 and config.http2 and url.startswith("https://"):
                response = await self._request_gated(engine, h, url, config)
            else:
                fut: asyncio.Future[int] = loop.create_future()
                engine.add(h, fut)
                try:
                    code = await fut
                except BaseException:  # cancelled: detach the transfer, keep the handle
                    engine.abandon(h)
                    raise
                try:
                    response = self._finish(h, code, url, config)
                finally:
                    engine.release(h)
            if response.status_code in _REDIRECT_CODES and config.follow_redirects:
                if chain is None:
                    chain = RedirectChain(config, "curl", too_many_code=_TOO_MANY_REDIRECTS)
                hop = chain.next_config(config, response)
                if hop is not None:
                    config = hop
                    continue
            return response if chain is None else chain.finish(response)

    async def _request_gated(
        self, engine: Engine, h: Easy, url: str, config: RequestConfig
    ) -> NormalizedResponse:
        """An https request that may multiplex: see :meth:`Engine.gate`."""
        slash = url.find("/", 8)
        origin = url if slash < 0 else url[:slash]
        if config.proxy:
            origin = f"{origin} via {config.proxy}"
        pioneer = False
        if not engine.origin_ready(origin):
            try:
                pioneer = await engine.gate(origin)
            except BaseException:
                engine.release(h)
                raise
        if engine.closed:
            engine.release(h)
            raise closed_error(url, "the backend was closed while the request was waiting")
        if pioneer:
            engine.pioneer(h, origin)
        fut: asyncio.Future[int] = engine.loop.create_future()
        engine.add(h, fut)
        try:
            try:
                code = await fut
            except BaseException:
                engine.abandon(h)
                raise
            try:
                return self._finish(h, code, url, config)
            finally:
                engine.release(h)
        finally:
            if pioneer:
                engine.origin_done(origin)

    def _configure(self, h: Easy, config: RequestConfig) -> str:
        """Apply ``config`` to ``h``; returns the URL.

        A pooled handle keeps its options: when they match (the usual case in a batch) only
        the URL is set, when only the User-Agent differs (fastreq rotates it) only
        ``CURLOPT_USERAGENT``, when other headers differ the header list; otherwise the
        handle is ``reset()`` and everything is applied again.
        """
        url = build_url(config.url, config.params) if config.params else config.url
        if config.data is None and config.json is None and config.on_chunk is None:
            # no follow_redirects / max_redirects: they do not touch the handle
            key = (config.method, config.timeout, config.proxy, config.verify_ssl, config.http2,
                   config.max_body_size)
            if key == h.key:
                ua, rest = split_user_agent(config.headers)
                if rest != h.headers or config.cookies != h.cookies:
                    set_headers(h.setopt, with_implied_headers(rest, config.cookies, None))
                    h.headers = rest
                    h.cookies = dict(config.cookies) if config.cookies is not None else None
                if ua != h.ua:  # a rotating User-Agent: the header list stays as it is
                    set_user_agent(h.setopt, ua)
                    h.ua = ua
                h.setopt(_URL, url)
                return url
            self._apply_all(h, config, url)
            h.key = key
        else:
            self._apply_all(h, config, url)
            h.key = None  # bodies and stream callbacks are per request: reset next time
        return url

    def _apply_all(self, h: Easy, config: RequestConfig, url: str) -> None:
        if config.follow_redirects and config.stream and config.on_chunk is not None:
            config = replace(config, on_chunk=_skip_redirect_body(h, config.on_chunk))
        apply_all(h, config, url, h2=self._h2, http3=self._http3, ca_bundle=self._ca_bundle)

    # -- results ------------------------------------------------------------------------
    def _finish(self, h: Easy, code: int, url: str, config: RequestConfig) -> NormalizedResponse:
        """The response of a finished transfer, or its error raised."""
        if not code:
            return self._response(h, url)
        if code == _FILESIZE_EXCEEDED and config.follow_redirects:
            # A redirect's body is dropped anyway: cut short at max_body_size, it is no error
            # (a bomb or an endless body in a 3xx costs at most the cap, never decoded whole).
            h.chunks.clear()
            response = self._response(h, url)
            if response.status_code in _REDIRECT_CODES and response.has_header("location"):
                return response
        raise self._error(h, code, url, config)

    @staticmethod
    def _response(h: Easy, url: str) -> NormalizedResponse:
        getinfo = h.getinfo
        blob, version, _ = last_block(h.hdrs)
        content_type: str | None = getinfo(_CONTENT_TYPE)
        is_json = _JSON_TYPES.get(content_type)
        if is_json is None:
            is_json = _is_json(content_type)
        return make_response(
            getinfo(_RESPONSE_CODE),
            blob,
            b"".join(h.chunks),
            url,  # the URL of this hop: libcurl never follows a redirect
            is_json,
            version,
            getinfo(_TOTAL_TIME),
        )

    @staticmethod
    def _error(h: Easy, code: int, url: str, config: RequestConfig) -> Exception:
        if code == CLOSED_CODE:
            return closed_error(url, h.errmsg)
        if h.stream_error is not None:
            exc, h.stream_error = h.stream_error, None
            return callback_error(url, exc)
        connected = h.getinfo(pycurl.REQUEST_SIZE) > 0  # bytes of request sent
        return curl_error(code, h.errmsg, url, connected=connected, via_proxy=bool(config.proxy))
