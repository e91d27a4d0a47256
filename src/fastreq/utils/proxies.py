"""Proxy pool: parse proxy specs, rotate them per request, cool failed ones down.

Accepted forms: ``scheme://[user:pass@]host:port`` (http, https, socks5, socks5h, socks4),
``host:port`` (http assumed) and Webshare's ``host:port:user:pass``. Sources: a list, a file
(one per line, ``#`` comments), or the ``FASTREQ_PROXIES`` environment variable (comma or
newline separated).

A proxy that fails is cooled down for ``cooldown`` seconds and the request goes through
another. When every proxy is cooling down, requests wait for the first to come back
(``when_exhausted="wait"``) or fail with :class:`~fastreq.exceptions.ProxyError`
(``"fail"``): they never silently go direct and expose the user's address.

Example::

    pool = ProxyPool(["10.0.0.1:8080", "p.example.com:3128:alice:s3cret"], random_order=True)
    proxy = await pool.acquire()          # 'http://alice:s3cret@p.example.com:3128'
    pool.mark_failed(proxy)               # cooled down for 60 s
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastreq.exceptions import ConfigurationError, ProxyError

__all__ = [
    "ProxyPool",
    "bypasses_proxy",
    "load_proxies",
    "parse_proxy",
    "proxy_pool_from_option",
]

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


def load_proxies(source: str | os.PathLike[str] | Iterable[str]) -> list[str]:
    """Proxy URLs from a list, or from a file path (one per line; blank and ``#`` skipped)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ConfigurationError(f"proxy file {str(path)!r} does not exist")
        lines = path.read_text("utf-8").splitlines()
        return [parse_proxy(line) for line in lines if line.strip() and not line.startswith("#")]
    return [parse_proxy(p) for p in source]


def proxies_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """``FASTREQ_PROXIES``: comma- or newline-separated proxy specs (empty list if unset)."""
    value = (environ if environ is not None else os.environ).get("FASTREQ_PROXIES", "")
    specs = [s for chunk in value.splitlines() for s in chunk.split(",") if s.strip()]
    return [parse_proxy(s) for s in specs]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def bypasses_proxy(host: str, no_proxy: str | None) -> bool:
    """Whether ``host`` matches a ``NO_PROXY`` list, on domain boundaries only.

    ``example.com`` (or ``.example.com``) matches ``example.com`` and ``api.example.com`` but
    not ``badexample.com``; ``*`` matches everything; ports in entries are ignored. IP
    addresses match whole (``[::1]`` or ``::1`` for IPv6) or by CIDR (``10.0.0.0/8``), never
    by suffix.
    """
    if not no_proxy:
        return False
    host = host.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if entry.startswith("["):
            entry = entry[1 : entry.index("]")] if "]" in entry else entry[1:]
        elif entry.count(":") == 1:
            entry = entry.split(":", 1)[0]
        entry = entry.lstrip("*").lstrip(".").rstrip(".")
        if not entry:
            continue
        if host == entry:
            return True
        if "/" in entry:
            address = _ip(host)
            try:
                if address is not None and address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif host.endswith("." + entry) and _ip(host) is None:
            return True
    return False


class ProxyPool:
    """Hands out proxies in turn (or at random), skipping those cooling down after a failure.

    ``clock`` and ``sleep`` are injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        proxies: Iterable[str],
        *,
        random_order: bool = False,
        cooldown: float = 60.0,
        when_exhausted: str = "wait",
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.proxies = [parse_proxy(p) for p in proxies]
        if not self.proxies:
            raise ConfigurationError("the proxy list is empty")
        if when_exhausted not in ("wait", "fail"):
            raise ConfigurationError(
                f"when all proxies are down fastreq can 'wait' or 'fail', got {when_exhausted!r}"
            )
        if not isinstance(cooldown, (int, float)) or cooldown < 0:
            raise ConfigurationError(f"proxy cooldown must be >= 0 seconds, got {cooldown!r}")
        self.random_order = random_order
        self.cooldown = float(cooldown)
        self.when_exhausted = when_exhausted
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._next = 0
        self._down_until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.proxies)

    def _available(self) -> list[str]:
        if not self._down_until:
            return self.proxies
        now = self._clock()
        for proxy, until in list(self._down_until.items()):
            if until <= now:
                del self._down_until[proxy]
        return [p for p in self.proxies if p not in self._down_until]

    def next(self) -> str | None:
        """The next usable proxy, or ``None`` when every one is cooling down."""
        available = self._available()
        if not available:
            return None
        if self.random_order:
            return self._rng.choice(available)
        proxy = available[self._next % len(available)]
        self._next += 1
        return proxy

    async def acquire(self, avoid: str | None = None) -> str:
        """A usable proxy (not ``avoid`` when another exists); waits or fails when all are down."""
        while True:
            proxy = self.next()
            if proxy is not None and proxy == avoid and len(self._available()) > 1:
                proxy = self.next()
            if proxy is not None:
                return proxy
            if self.when_exhausted == "fail":
                raise ProxyError(
                    f"all {len(self.proxies)} proxies are cooling down after failures; "
                    "not sending directly"
                )
            soonest = min(self._down_until.values())
            await self._sleep(max(soonest - self._clock(), 0.001))

    def mark_failed(self, proxy: str) -> None:
        """Cool ``proxy`` down after a failure it is to blame for."""
        if proxy in self.proxies and self.cooldown > 0:
            self._down_until[proxy] = self._clock() + self.cooldown

    def mark_ok(self, proxy: str) -> None:
        self._down_until.pop(proxy, None)


def proxy_pool_from_option(
    proxies: Iterable[str] | str | os.PathLike[str] | None,
    *,
    random_order: bool,
    cooldown: float,
    when_exhausted: str,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
) -> ProxyPool | None:
    """The pool for a client's ``proxies=`` option: a list, one proxy, or a file path."""
    if proxies is None:
        if random_order:
            raise ConfigurationError("random_proxy=True needs proxies=[...]")
        return None
    if isinstance(proxies, os.PathLike) or (isinstance(proxies, str) and ":" not in proxies):
        proxies = load_proxies(proxies)  # a file path (a missing one is named as such)
    elif isinstance(proxies, str):
        proxies = [proxies]
    return ProxyPool(
        proxies, random_order=random_order, cooldown=cooldown, when_exhausted=when_exhausted,
        clock=clock, sleep=sleep,
    )
