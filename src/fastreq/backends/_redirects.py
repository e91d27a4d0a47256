"""Following redirects in fastreq itself: one policy for the backends that need it.

libcurl and aiohttp get security details of redirects wrong (a caller-set
``Proxy-Authorization`` sent to another host, a POST's ``Content-Type`` kept on the GET after
a 303...), so the curl and aiohttp backends send every hop themselves with the library's own
following turned off, and build each next hop here:

- the ``Location`` is resolved against the URL just requested, percent-encoded and
  IDNA-encoded like every URL fastreq sends; one that is not a valid http(s) URL is a
  :class:`~fastreq.exceptions.ProtocolError`;
- 303 turns any method but HEAD into a GET, and 301/302 turn a POST into a GET (what
  browsers, requests and httpx do); a changed method loses its body and the headers that
  describe one (Content-Type, Content-Length, Transfer-Encoding); 307/308 keep both;
- a hop to another origin (scheme, host or port) drops ``Authorization``, ``Cookie`` and
  ``Proxy-Authorization`` and the per-request ``cookies``;
- ``params`` belong to the first URL only (the Location is a whole URL);
- more than ``max_redirects`` hops is a :class:`~fastreq.exceptions.TooManyRedirectsError`,
  and a ``total`` timeout covers the whole chain, not each hop.

A 3xx without a ``Location`` header is not a redirect: it is the response. Backends check
:data:`REDIRECT_CODES` first and create a :class:`RedirectChain` only on a redirect, so a
request that is not redirected pays nothing here. The body of a redirect that is followed is
never decoded nor delivered: a backend reads at most :data:`DRAIN_LIMIT` bytes of it, raw,
to keep the connection, and closes the connection when there is more.

Example (what a backend's request loop does)::

    response = await send(config)
    if response.status_code in REDIRECT_CODES and config.follow_redirects:
        chain = RedirectChain(config, "curl")
        while (hop := chain.next_config(config, response)) is not None:
            config = hop
            response = await send(config)
        response = chain.finish(response)
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    ProtocolError,
    RequestTimeoutError,
    TooManyRedirectsError,
    ValidationError,
)
from fastreq.timeouts import Timeout, TimeoutLike
from fastreq.utils.validators import to_ascii_url, validate_url

__all__ = [
    "DRAIN_LIMIT",
    "REDIRECT_CODES",
    "RedirectChain",
    "location_text",
    "redirect_config",
    "resolve_location",
    "same_origin",
]

#: The statuses that are followed when they carry a Location header.
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: Bytes of a followed redirect's body read (raw) and dropped so that its connection can be
#: reused; a longer body closes the connection instead of being read.
DRAIN_LIMIT = 64 * 1024
#: Request headers that describe a body: dropped with the body on a method change.
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
#: Credentials never sent to another origin than the one the caller addressed.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def _percent(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def resolve_location(url: str, location: str) -> str:
    """The absolute ASCII URL ``location`` points to, relative to ``url``.

    Spaces and control characters are percent-encoded, a non-ASCII host IDNA-encoded and
    other non-ASCII characters percent-encoded as UTF-8 (as browsers do). Raises
    :class:`ValidationError` when the result is not a valid http(s) URL.
    """
    location = location.strip()
    # with a scheme it is absolute: urljoin would read "http:x" or "http://" as relative
    try:
        target = location if urlsplit(location).scheme else urljoin(url, location)
    except ValueError as exc:  # "http://[::1": urllib's "Invalid IPv6 URL"
        raise ValidationError(f"invalid URL ({exc}): {location!r}") from None
    if _UNSAFE.search(target):
        target = _UNSAFE.sub(_percent, target)
    if not target.isascii():
        try:
            target = to_ascii_url(target)
        except UnicodeError as exc:  # undecodable bytes kept as surrogates by a parser
            raise ValidationError(f"URL cannot be encoded ({exc}): {target!r}") from None
    return validate_url(target)


def location_text(value: str) -> str:
    """A ``Location`` header value read as latin-1 (``http.client``, urllib3) as the text the
    server meant: UTF-8 in practice, so decoded again as UTF-8 when that works."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(to_ascii_url(url) if not url.isascii() else url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(a: str, b: str) -> bool:
    """Whether URLs ``a`` and ``b`` share scheme, host and (effective) port."""
    return _origin(a) == _origin(b)


def _without(headers: dict[str, str] | None, names: frozenset[str]) -> dict[str, str] | None:
    if not headers:
        return headers
    kept = {k: v for k, v in headers.items() if k.lower() not in names}
    return kept if len(kept) != len(headers) else headers


def redirect_config(
    sent: RequestConfig, url: str, status: int, location: str
) -> RequestConfig:
    """The request to send after ``sent`` (requested as ``url``, with its params) got a
    ``status`` redirect to ``location``. Does not count hops (see :class:`RedirectChain`).

    Raises :class:`ValidationError` when ``location`` is not a valid http(s) URL.
    """
    target = resolve_location(url, location)
    method = sent.method.upper()
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        new_method = "GET"
    else:
        new_method = method
    headers = sent.headers
    data, json = sent.data, sent.json
    if new_method != method:
        data = json = None
        headers = _without(headers, _BODY_HEADERS)
    cookies = sent.cookies
    if not same_origin(url, target):
        headers = _without(headers, _CREDENTIAL_HEADERS)
        cookies = None
    return replace(
        sent, url=target, method=new_method, params=None, data=data, json=json,
        headers=headers, cookies=cookies,
    )


def _remaining(timeout: TimeoutLike, elapsed: float) -> tuple[TimeoutLike, float | None]:
    """``timeout`` with its total reduced by ``elapsed``, and that remaining total."""
    if timeout is None:
        return None, None
    if isinstance(timeout, Timeout):
        if timeout.total is None:
            return timeout, None
        left = timeout.total - elapsed
        if left <= 0:
            return timeout, left
        return Timeout(timeout.connect, timeout.read, left, timeout.pool), left
    left = float(timeout) - elapsed
    return (left if left > 0 else timeout), left


class RedirectChain:
    """The hops of one request so far; create it on the first redirect response.

    ``backend_name`` goes into the errors; ``too_many_code`` is the ``code`` of a
    :class:`TooManyRedirectsError` (libcurl's 47 for the curl backend).
    """

    __slots__ = ("backend_name", "elapsed", "first", "hops", "too_many_code")

    def __init__(
        self, first: RequestConfig, backend_name: str, *, too_many_code: int | None = None
    ) -> None:
        self.first = first
        self.backend_name = backend_name
        self.too_many_code = too_many_code
        self.hops = 0
        self.elapsed = 0.0

    def next_config(
        self, sent: RequestConfig, response: NormalizedResponse
    ) -> RequestConfig | None:
        """The next hop's config after ``sent`` got ``response`` (whose ``url`` is the URL
        requested), or ``None`` when ``response`` is final (not a redirect to follow).

        Raises :class:`TooManyRedirectsError` past ``max_redirects`` hops,
        :class:`ProtocolError` for a Location that is not a valid http(s) URL and
        :class:`RequestTimeoutError` when the chain used up the ``total`` timeout.
        """
        if response.status_code not in REDIRECT_CODES or not sent.follow_redirects:
            return None
        location = response.headers.get("location")
        if location is None:
            return None
        first = self.first
        if self.hops >= max(0, first.max_redirects):
            raise TooManyRedirectsError(
                f"more than {first.max_redirects} redirects (the last to {location!r} "
                f"from {response.url})",
                backend_name=self.backend_name,
                url=first.url,
                code=self.too_many_code,
            )
        try:
            hop = redirect_config(sent, response.url, response.status_code, location)
        except ValidationError as exc:
            raise ProtocolError(
                f"redirect to an invalid URL: {exc} (Location {location!r} from {response.url})",
                backend_name=self.backend_name,
                url=first.url,
            ) from exc
        self.hops += 1
        self.elapsed += response.elapsed or 0.0
        timeout, left = _remaining(first.timeout, self.elapsed)
        if left is not None:
            if left <= 0:
                raise RequestTimeoutError(
                    f"request exceeded its total timeout while following redirects "
                    f"({self.hops} so far)",
                    backend_name=self.backend_name,
                    url=first.url,
                )
            hop.timeout = timeout
        return hop

    def finish(self, response: NormalizedResponse) -> NormalizedResponse:
        """``response`` (the final one) with ``elapsed`` covering every hop."""
        if response.elapsed is not None:
            response.elapsed += self.elapsed
        return response
