"""The backend contract: :class:`Backend`, :class:`RequestConfig`, :class:`NormalizedResponse`.

A backend turns one :class:`RequestConfig` into one :class:`NormalizedResponse`. It knows
nothing of retries, rate limits or ordering; it raises only :mod:`fastreq.exceptions` types.

Example: a custom backend::

    from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig

    class EchoBackend(Backend):
        @property
        def name(self) -> str:
            return "echo"

        async def request(self, config: RequestConfig) -> NormalizedResponse:
            return NormalizedResponse.from_backend(
                status_code=200, headers={"Content-Type": "text/plain"},
                content=config.url.encode(), url=config.url,
            )

        async def close(self) -> None:
            pass

    fastreq(["http://a/", "http://b/"], backend=EchoBackend())
"""

from __future__ import annotations

import codecs
import json as _json
import warnings
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastreq._sync import LoopThread
from fastreq.exceptions import ResponseDecodeError
from fastreq.timeouts import Timeout, TimeoutLike

_loads: Callable[[bytes], Any]
try:  # orjson parses JSON ~3x faster; optional (``pip install fastreq[speed]``)
    import orjson as _orjson

    _loads = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = _json.loads


__all__ = ["Backend", "HeaderInput", "NormalizedResponse", "RequestConfig"]

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]
_MISSING: Any = object()
DEFAULT_MAX_REDIRECTS = 20
#: Default cap on a response body held in memory, after decompression (decompression bombs).
DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024


@dataclass(slots=True)
class RequestConfig:
    """Everything a backend needs to send one request.

    ``timeout`` is a number (total seconds), a :class:`~fastreq.Timeout` or ``None`` (no
    limit). With ``stream=True`` the body is read in chunks; if ``on_chunk`` is set each chunk
    goes to it and ``NormalizedResponse.content`` stays empty, so the body is never held
    whole in memory. ``max_body_size`` caps the decoded (decompressed) body held in memory:
    a larger one fails that request with :class:`~fastreq.exceptions.ResponseDecodeError`
    (``None``: no cap).
    """

    url: str
    method: str = "GET"
    params: dict[str, Any] | None = None
    data: Any = None
    json: Any = None
    headers: dict[str, str] | None = None
    cookies: dict[str, str] | None = None
    timeout: TimeoutLike = None
    proxy: str | None = None
    http2: bool = True
    stream: bool = False
    follow_redirects: bool = True
    verify_ssl: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    on_chunk: Callable[[bytes], object] | None = None
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE

    @property
    def timeouts(self) -> Timeout | None:
        """``timeout`` as a :class:`~fastreq.Timeout` (``None``: no limit)."""
        return Timeout.coerce(self.timeout)


def _content_type_parts(content_type: str) -> tuple[str, str | None]:
    mime, _, rest = content_type.partition(";")
    charset = None
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return mime.strip().lower(), charset


def is_json_content_type(content_type: str) -> bool:
    """``application/json`` and any ``+json`` type (``application/problem+json``...)."""
    mime = content_type.partition(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


class NormalizedResponse:
    """A response, the same whatever backend produced it.

    ``headers`` has lower-case names; a repeated header is joined with ``", "`` there, and
    every separate value stays readable through :meth:`get_all` (``Set-Cookie``...).
    ``text`` and ``json_data`` are computed on first use.
    """

    __slots__ = (
        "_json",
        "_text",
        "content",
        "elapsed",
        "header_items",
        "headers",
        "http_version",
        "is_json",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        headers: HeaderInput | None = None,
        content: bytes = b"",
        text: str | None = None,
        json_data: Any = _MISSING,
        url: str = "",
        is_json: bool | None = None,
        *,
        http_version: str | None = None,
        elapsed: float | None = None,
    ) -> None:
        self.status_code = status_code
        items = _header_items(headers)
        self.header_items: list[tuple[str, str]] = items
        self.headers: dict[str, str] = _join_items(items)
        self.content = content
        self.url = url
        if is_json is None:
            content_type = self.headers.get("content-type")
            is_json = content_type is not None and is_json_content_type(content_type)
        self.is_json = is_json
        self._text = text
        self._json = json_data
        self.http_version = http_version
        self.elapsed = elapsed

    @classmethod
    def from_backend(
        cls,
        status_code: int,
        headers: HeaderInput | None,
        content: bytes,
        url: str,
        is_json: bool | None = None,
        **extra: Any,
    ) -> NormalizedResponse:
        """Build a response from what a backend read; header names are lower-cased."""
        return cls(status_code, headers, content, url=url, is_json=is_json, **extra)

    @staticmethod
    def _normalize_headers(headers: HeaderInput | None) -> dict[str, str]:
        """Lower-case header names; repeated headers are joined with ``", "``."""
        return _join_items(_header_items(headers))

    # -- body access -------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        """The charset from Content-Type, or ``utf-8``."""
        _, charset = _content_type_parts(self.headers.get("content-type", ""))
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with the response's charset (UTF-8 fallback, never raises)."""
        if self._text is None:
            self._text = self.content.decode(self.encoding, errors="replace")
        return self._text

    def json(self) -> Any:
        """The body parsed as JSON; :class:`~fastreq.exceptions.ResponseDecodeError` if invalid."""
        if self._json is _MISSING:
            try:
                self._json = _loads(self.content)
            except ValueError as exc:
                raise ResponseDecodeError(
                    f"response body is not valid JSON ({exc})", url=self.url
                ) from exc
        return self._json

    @property
    def json_data(self) -> Any:
        """The parsed JSON body when the response is JSON and valid, else ``None``."""
        if self._json is _MISSING:
            if not self.is_json or not self.content:
                return None
            try:
                return self.json()
            except ResponseDecodeError:
                return None
        return self._json

    def has_header(self, name: str) -> bool:
        """Whether header ``name`` (lower-case) is present; backends may answer it cheaply."""
        return name in self.headers

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order received."""
        lname = name.lower()
        return [value for key, value in self.header_items if key == lname]

    def iter_lines(self) -> Iterator[str]:
        """The text body line by line, without line endings (NDJSON, SSE...)."""
        yield from self.text.splitlines()

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Async version of :meth:`iter_lines`."""
        for line in self.text.splitlines():
            yield line

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def raise_for_status(self) -> NormalizedResponse:
        """Raise :class:`~fastreq.exceptions.BackendError` for a 4xx/5xx status."""
        if self.status_code >= 400:
            from fastreq.exceptions import BackendError

            raise BackendError(f"HTTP {self.status_code} for {self.url}", url=self.url)
        return self

    def __repr__(self) -> str:
        return f"<NormalizedResponse [{self.status_code}] {self.url} {len(self.content)} bytes>"


def _header_items(headers: HeaderInput | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    pairs: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (k.lower() if k.__class__ is str else str(k).lower(), v if v.__class__ is str else str(v))
        for k, v in pairs
    ]


def _join_items(items: list[tuple[str, str]]) -> dict[str, str]:
    out = dict(items)
    if len(out) == len(items):
        return out  # no repeated header: the common case
    out = {}
    for key, value in items:
        if key in out:
            out[key] = f"{out[key]}, {value}"
        else:
            out[key] = value
    return out


class Backend(ABC):
    """Base class of every backend.

    Use it from async code (``async with backend: await backend.request(config)``) or from
    sync code (``with backend: backend.request_sync(config)``). One instance serves one
    mode: its sessions are bound to the event loop they were made on.
    """

    def __init__(self, http2_enabled: bool = True) -> None:
        self._http2_enabled = http2_enabled
        self._portal: LoopThread | None = None
        self._warned: set[str] = set()

    @property
    @abstractmethod
    def name(self) -> str:
        """Backend identifier (``"aiohttp"``, ``"curl"``...)."""

    @abstractmethod
    async def request(self, config: RequestConfig) -> NormalizedResponse:
        """Send one request and return its response; raise only fastreq exceptions."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and sessions; the backend may be used again afterwards."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.close()

    def supports_http2(self) -> bool:
        """Whether this backend can speak HTTP/2."""
        return False

    # -- sync use ------------------------------------------------------------------------
    def request_sync(self, config: RequestConfig) -> NormalizedResponse:
        """Send one request from synchronous code (the backend runs on a private loop)."""
        if self._portal is None:
            self._portal = LoopThread(name=f"fastreq-{self.name}")
        return self._portal.run(self.request(config))

    def close_sync(self) -> None:
        """Close the backend from synchronous code."""
        if self._portal is not None:
            portal, self._portal = self._portal, None
            try:
                portal.run(self.close())
            finally:
                portal.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close_sync()

    # -- helpers for subclasses ----------------------------------------------------------
    def _warn_once(self, key: str, message: str) -> None:
        """Warn (``UserWarning``) once per backend instance about an unsupported option."""
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"[fastreq:{self.name}] {message}", UserWarning, stacklevel=3)
