"""Wire-level helpers every backend shares, so that all of them send the same bytes.

Query parameters, bodies (bytes / str / form dict / JSON) and the Cookie header are encoded
here once instead of being left to each library's own conventions.
"""

from __future__ import annotations

import asyncio
import inspect
import json as _json
from collections.abc import Callable, Coroutine, Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastreq.backends.base import RequestConfig
from fastreq.exceptions import BackendError, ResponseDecodeError, ValidationError

__all__ = [
    "body_too_large",
    "build_url",
    "deliver_chunk",
    "describe",
    "encode_body",
    "json_bytes",
    "outgoing_headers",
]

#: More Content-Encoding layers than this is refused (like urllib3 and libcurl).
MAX_CONTENT_ENCODINGS = 5
#: Methods a backend may resend once when a reused connection died before any response.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _pairs(values: Mapping[str, Any], what: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((str(key), _scalar(v)) for v in value if v is not None)
        elif isinstance(value, (str, int, float, bool)):
            pairs.append((str(key), _scalar(value)))
        else:
            raise ValidationError(
                f"{what} value for {key!r} must be str, int, float, bool, None or a list of "
                f"those, got {type(value).__name__}"
            )
    return pairs


def build_url(url: str, params: Mapping[str, Any] | None) -> str:
    """``url`` with ``params`` appended to its query (``None`` values skipped, lists repeated)."""
    if not params:
        return url
    query = urlencode(_pairs(params, "params"))
    if not query:
        return url
    parts = urlsplit(url)
    merged = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, merged, parts.fragment))


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; :class:`ValidationError` when it is not valid JSON
    (NaN / Infinity, a non-str key, an object json cannot encode, a lone surrogate)."""
    try:
        text = _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise ValidationError(f"json body cannot be sent as JSON: {describe(exc)}") from None


def encode_body(config: RequestConfig) -> tuple[bytes | None, str | None]:
    """The request body as bytes and the Content-Type it implies (``None``: none implied)."""
    if config.json is not None:
        if config.data is not None:
            raise ValidationError("pass either data= or json=, not both")
        return json_bytes(config.json), "application/json"
    data = config.data
    if data is None:
        return None, None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data), None
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, Mapping):
        return urlencode(_pairs(data, "data")).encode("ascii"), "application/x-www-form-urlencoded"
    if isinstance(data, (list, tuple)) and all(
        isinstance(item, tuple) and len(item) == 2 for item in data
    ):
        return urlencode([(str(k), _scalar(v)) for k, v in data]).encode(
            "ascii"
        ), "application/x-www-form-urlencoded"
    raise ValidationError(
        "data must be bytes, str, a dict or a list of (key, value) pairs, "
        f"got {type(data).__name__}"
    )


def outgoing_headers(config: RequestConfig, content_type: str | None) -> dict[str, str]:
    """The headers to send: the caller's, plus Content-Type and Cookie when implied.

    The caller's dict is never modified. A caller-set Content-Type wins; ``cookies`` are
    appended to a caller-set Cookie header.
    """
    headers = dict(config.headers) if config.headers else {}
    return with_implied_headers(headers, config.cookies, content_type)


def with_implied_headers(
    headers: dict[str, str], cookies: dict[str, str] | None, content_type: str | None
) -> dict[str, str]:
    """``headers`` plus Content-Type (unless set) and Cookie (appended to a set one); the
    same dict when there is nothing to add, else a new one."""
    if content_type is None and not cookies:
        return headers
    headers = dict(headers)
    lower = {k.lower(): k for k in headers}
    if content_type is not None and "content-type" not in lower:
        headers["Content-Type"] = content_type
    if cookies:
        jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if "cookie" in lower:
            name = lower["cookie"]
            headers[name] = f"{headers[name]}; {jar}" if headers[name] else jar
        else:
            headers["Cookie"] = jar
    return headers


async def close_on(
    loop: asyncio.AbstractEventLoop | None, close: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``close()`` on ``loop``, the event loop the resources belong to."""
    if loop is None or loop is asyncio.get_running_loop():
        await close()
    elif loop.is_running():  # in use from another thread's loop: close it over there
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(close(), loop))
    else:  # its loop is gone (asyncio.run() ended without close()): best effort
        with suppress(Exception):
            await close()


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` (just the type name when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def deliver_chunk(
    on_chunk: Callable[[bytes], object], chunk: bytes, backend_name: str, url: str
) -> None:
    """Hand one body chunk to the caller's ``on_chunk`` (awaited if it returns an awaitable);
    an exception there becomes a :class:`BackendError` for this request."""
    try:
        result = on_chunk(chunk)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        raise BackendError(
            f"on_chunk callback raised {describe(exc)}", backend_name=backend_name, url=url
        ) from exc


def body_too_large(cap: int, backend_name: str, url: str) -> ResponseDecodeError:
    """The error for a (decoded) body over ``RequestConfig.max_body_size``."""
    return ResponseDecodeError(
        f"response body exceeds max_body_size ({cap} bytes after decompression); "
        "a decompression bomb or a body to stream instead",
        backend_name=backend_name,
        url=url,
    )
