"""Fail fast on bad input, before any request is sent, with an error that names the value.

Example::

    validate_url("ftp://example.com")
    # ValidationError: unsupported URL scheme 'ftp' in 'ftp://example.com' (use http or https)
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastreq.exceptions import ConfigurationError, ValidationError

__all__ = [
    "to_ascii_url",
    "validate_concurrency",
    "validate_headers",
    "validate_keys",
    "validate_method",
    "validate_url",
]

MAX_URL_LENGTH = 65536
_SCHEMES = frozenset({"http", "https"})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")
# The everyday shape (plain host name or IPv4, optional short port, printable path), checked
# by one regex match instead of a full urlsplit; anything else takes the careful path.
_PLAIN_URL = re.compile(
    r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.\-]+"
    # a port 1-65535 without a leading zero; the lookahead stops the alternation from
    # backtracking through shorter prefixes of a longer port (~100 ns per URL)
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
    r"|6553[0-5])(?![0-9]))?"
    r"(?:[/?#][!-~]*)?"
)


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "...'"


def validate_url(url: object) -> str:
    """Check that ``url`` is an absolute http(s) URL with a host and no control characters."""
    if not isinstance(url, str):
        raise ValidationError(f"URL must be a str, got {type(url).__name__}: {_show(url)}")
    if len(url) <= 2048 and _PLAIN_URL.fullmatch(url) is not None:
        return url
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"URL is {len(url)} characters long, over {MAX_URL_LENGTH}")
    if _BAD_URL_CHARS.search(url):
        raise ValidationError(
            f"URL contains whitespace or control characters (CR, LF, NUL...): {_show(url)}"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationError(f"malformed URL {_show(url)}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValidationError(f"URL has no scheme (expected http:// or https://): {_show(url)}")
    if scheme not in _SCHEMES:
        raise ValidationError(
            f"unsupported URL scheme {scheme!r} in {_show(url)} (use http or https)"
        )
    if not host:
        raise ValidationError(f"URL has no host: {_show(url)}")
    if parts.port == 0:
        raise ValidationError(f"URL has port 0: {_show(url)}")
    if not url.isascii():
        to_ascii_url(url)  # a host that IDNA cannot encode fails here, before sending
    return url


# Every printable ASCII character is left alone: only what is beyond ASCII gets encoded.
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


def to_ascii_url(url: str) -> str:
    """``url`` as ASCII: a non-ASCII host IDNA-encoded, other non-ASCII characters
    percent-encoded as UTF-8 (what browsers send for an IRI). ASCII URLs come back as is.

    Example::

        to_ascii_url("http://bücher.example/straße?q=é")
        # 'http://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A9'
    """
    if url.isascii():
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        host = parts.hostname or ""
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValidationError(f"URL host cannot be IDNA-encoded ({exc}): {_show(url)}") \
                from None
        if ":" in ascii_host:
            ascii_host = f"[{ascii_host}]"
        userinfo, at, _ = netloc.rpartition("@")
        port = f":{parts.port}" if parts.port is not None else ""
        netloc = (quote(userinfo, safe=_PRINTABLE) + "@" if at else "") + ascii_host + port
    return urlunsplit((
        parts.scheme,
        netloc,
        quote(parts.path, safe=_PRINTABLE),
        quote(parts.query, safe=_PRINTABLE),
        quote(parts.fragment, safe=_PRINTABLE),
    ))


def validate_method(method: object) -> str:
    """An HTTP method token, upper-cased (``"get"`` → ``"GET"``)."""
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise ValidationError(f"invalid HTTP method {_show(method)}")
    return method.upper()


def validate_headers(headers: object, what: str = "headers") -> dict[str, str] | None:
    """A copy of ``headers`` with str values; names must be tokens, values ASCII without
    CR/LF/NUL.

    Numbers are turned into strings; ``None`` values drop the header.
    """
    if headers is None:
        return None
    if not isinstance(headers, Mapping):
        raise ValidationError(f"{what} must be a dict of str to str, got {type(headers).__name__}")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValidationError(f"invalid header name {_show(name)} in {what}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, bytes, int, float)):
            raise ValidationError(
                f"header {name!r} in {what} must be a str, got {type(value).__name__}"
            )
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if _BAD_VALUE_CHARS.search(text):
            raise ValidationError(
                f"header {name!r} in {what} contains CR, LF or NUL: {_show(text)}"
            )
        if not text.isascii():
            # Backends disagree on the wire bytes (UTF-8, latin-1 or an encoding error), so
            # the value would not arrive as given: encode it first (RFC 8187, percent-encoding).
            raise ValidationError(
                f"header {name!r} in {what} has non-ASCII characters: {_show(text)}"
            )
        out[name] = text
    return out


def validate_cookies(cookies: object, what: str = "cookies") -> dict[str, str] | None:
    """A copy of a cookie dict; names and values may not hold ``;``, ``,``, CR, LF or NUL."""
    if cookies is None:
        return None
    if not isinstance(cookies, Mapping):
        raise ValidationError(f"{what} must be a dict of str to str, got {type(cookies).__name__}")
    out: dict[str, str] = {}
    for name, value in cookies.items():
        text = str(value)
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValidationError(f"invalid cookie name {_show(name)} in {what}")
        if re.search(r"[;\r\n\x00]", text):
            raise ValidationError(f"cookie {name!r} in {what} has a forbidden character: {text!r}")
        out[name] = text
    return out


def validate_keys(keys: object, count: int) -> list[Hashable]:
    """``keys`` as a list: one per input, all distinct and hashable."""
    if isinstance(keys, (str, bytes, Mapping)) or not isinstance(keys, Iterable):
        raise ValidationError(f"keys must be a list, got {type(keys).__name__}")
    key_list: list[Hashable] = list(keys)
    if len(key_list) != count:
        raise ValidationError(f"got {len(key_list)} keys for {count} URLs; they must match")
    seen: set[Hashable] = set()
    for key in key_list:
        try:
            if key in seen:
                raise ValidationError(f"duplicate key {_show(key)}: keys must be unique")
            seen.add(key)
        except TypeError:
            raise ValidationError(f"key {_show(key)} is not hashable") from None
    return key_list


def validate_limit(value: Any, name: str, *, allow_none: bool = False) -> Any:
    """An int >= 0 (``None`` too when ``allow_none``): a count or size limit option."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        what = "an int >= 0" + (" or None" if allow_none else "")
        raise ConfigurationError(f"{name} must be {what}, got {value!r}")
    return value


def validate_concurrency(value: Any, name: str = "concurrency") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value
