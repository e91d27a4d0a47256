"""Cookies a client keeps between requests: the user's own and those servers set.

Server cookies are kept **per host** (host-only: a cookie from ``a.example.com`` goes back to
``a.example.com`` and nowhere else, whatever its ``Domain`` attribute says), honour ``Path``
(default: the directory of the URL that set them, as RFC 6265 says),
``Secure`` (https only), ``Max-Age`` and ``Expires`` (an expired cookie deletes the stored one).
User cookies (``cookies=`` / :meth:`CookieJar.set`) go to every host, as the user asked.

Example::

    jar = CookieJar()
    jar.extract("https://a.example/login", ["sid=abc; Path=/; HttpOnly"])
    jar.header_for("https://a.example/account")   # {'sid': 'abc'}
    jar.header_for("https://b.example/")          # {}
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["CookieJar"]


@dataclass(slots=True)
class _Cookie:
    value: str
    path: str
    secure: bool
    expires: float | None  # wall-clock seconds, None: session cookie


def _default_path(request_path: str) -> str:
    """RFC 6265 5.1.4: the request path up to (not including) its last ``/``, or ``/``."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rindex("/")]


def _parse_set_cookie(
    header: str, now: float, default_path: str = "/"
) -> tuple[str, _Cookie] | None:
    parts = header.split(";")
    name, sep, value = parts[0].partition("=")
    name = name.strip()
    if not sep or not name:
        return None
    cookie = _Cookie(value.strip().strip('"'), default_path, False, None)
    max_age_seen = False
    for attr in parts[1:]:
        key, _, val = attr.partition("=")
        key = key.strip().lower()
        val = val.strip()
        if key == "path" and val.startswith("/"):
            cookie.path = val
        elif key == "secure":
            cookie.secure = True
        elif key == "max-age":
            try:
                cookie.expires = now + int(val)
                max_age_seen = True
            except ValueError:
                continue
        elif key == "expires" and not max_age_seen:
            try:
                when = email.utils.parsedate_to_datetime(val)
            except (TypeError, ValueError, IndexError):
                continue
            if when is not None and when.tzinfo is not None:
                cookie.expires = when.timestamp()
    return name, cookie


def _path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path or cookie_path == "/":
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


class CookieJar:
    """User cookies for every host plus server cookies per host. Not shared between clients."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self.user: dict[str, str] = {}
        self._hosts: dict[str, dict[str, _Cookie]] = {}

    def __bool__(self) -> bool:
        return bool(self.user or self._hosts)

    def set(self, cookies: dict[str, str]) -> None:
        """Add cookies sent to every host."""
        self.user.update(cookies)

    def clear(self) -> None:
        """Forget every cookie: the user's and those servers set."""
        self.user.clear()
        self._hosts.clear()

    def server_cookies(self, host: str) -> dict[str, str]:
        """The cookies stored for ``host`` (name → value), expired ones left out."""
        now = self._now()
        stored = self._hosts.get(host.lower(), {})
        return {n: c.value for n, c in stored.items() if c.expires is None or c.expires > now}

    def extract(self, url: str, set_cookie_headers: Iterable[str]) -> None:
        """Store the cookies of a response from ``url``."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return
        now = self._now()
        default_path = _default_path(parts.path)
        for header in set_cookie_headers:
            parsed = _parse_set_cookie(header, now, default_path)
            if parsed is None:
                continue
            name, cookie = parsed
            store = self._hosts.setdefault(host, {})
            if cookie.expires is not None and cookie.expires <= now:
                store.pop(name, None)
            else:
                store[name] = cookie

    def for_url(self, url: str) -> dict[str, str] | None:
        """The cookies to send to ``url``: the user's, then the host's matching ones."""
        if not self._hosts:
            return dict(self.user) if self.user else None
        parts = urlsplit(url)
        stored = self._hosts.get((parts.hostname or "").lower())
        if not stored:
            return dict(self.user) if self.user else None
        now = self._now()
        https = parts.scheme.lower() == "https"
        path = parts.path or "/"
        out = dict(self.user)
        for name, cookie in stored.items():
            if cookie.expires is not None and cookie.expires <= now:
                continue
            if cookie.secure and not https:
                continue
            if _path_matches(path, cookie.path):
                out[name] = cookie.value
        return out or None
