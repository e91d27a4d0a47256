"""Proxy pool: parse proxy specs and hand one out per request (round-robin or random).

Accepted forms: ``scheme://[user:pass@]host:port`` (http, https, socks5, socks5h, socks4),
``host:port`` (http assumed) and Webshare's ``host:port:user:pass``.

Example::

    pool = ProxyPool(["10.0.0.1:8080", "p.example.com:3128:alice:s3cret"], random_order=True)
    pool.next()   # 'http://alice:s3cret@p.example.com:3128' or 'http://10.0.0.1:8080'
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from fastreq.exceptions import ConfigurationError

__all__ = ["ProxyPool", "parse_proxy"]

PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks5", "socks5h"})


def parse_proxy(spec: str) -> str:
    """Normalize one proxy spec to a URL; :class:`ConfigurationError` naming it if invalid."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(f"invalid proxy {spec!r}: expected a URL or host:port")
    text = spec.strip()
    if any(c in text for c in "\r\n\x00 "):
        raise ConfigurationError(f"invalid proxy {spec!r}: contains whitespace or control chars")
    if "://" not in text:
        parts = text.split(":")
        if len(parts) == 2:
            text = f"http://{parts[0]}:{parts[1]}"
        elif len(parts) == 4:
            host, port, user, password = parts
            text = f"http://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
        else:
            raise ConfigurationError(
                f"invalid proxy {spec!r}: expected scheme://host:port, host:port or "
                "host:port:user:pass"
            )
    split = urlsplit(text)
    if split.scheme.lower() not in PROXY_SCHEMES:
        raise ConfigurationError(
            f"unsupported proxy scheme {split.scheme!r} in {spec!r} "
            f"(use one of {', '.join(sorted(PROXY_SCHEMES))})"
        )
    try:
        port_number = split.port
    except ValueError:
        raise ConfigurationError(f"invalid proxy port in {spec!r}") from None
    if not split.hostname or port_number is None:
        raise ConfigurationError(f"invalid proxy {spec!r}: host and port are required")
    return text


class ProxyPool:
    """Hands out proxies in turn (or at random with ``random_order=True``)."""

    def __init__(
        self, proxies: Iterable[str], *, random_order: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.proxies = [parse_proxy(p) for p in proxies]
        if not self.proxies:
            raise ConfigurationError("the proxy list is empty")
        self.random_order = random_order
        self._rng = rng or random.Random()
        self._cycle = itertools.cycle(self.proxies)

    def next(self) -> str:
        if self.random_order:
            return self._rng.choice(self.proxies)
        return next(self._cycle)

    def __len__(self) -> int:
        return len(self.proxies)
