"""Defaults from the environment: :class:`GlobalConfig` reads ``FASTREQ_*`` variables.

An environment variable replaces fastreq's built-in default for that option; an argument
given to :class:`~fastreq.FastRequests` or :func:`~fastreq.fastreq` with a value other than
the built-in default always wins.

| variable | option | example |
|---|---|---|
| ``FASTREQ_BACKEND`` | ``backend`` | ``aiohttp`` |
| ``FASTREQ_CONCURRENCY`` | ``concurrency`` | ``100`` |
| ``FASTREQ_MAX_RETRIES`` | ``max_retries`` | ``5`` |
| ``FASTREQ_RATE_LIMIT`` | ``rate_limit`` (req/s) | ``20`` |
| ``FASTREQ_RATE_LIMIT_BURST`` | ``rate_limit_burst`` | ``10`` |
| ``FASTREQ_PER_HOST_CONCURRENCY`` | ``per_host_concurrency`` | ``4`` |
| ``FASTREQ_PER_HOST_RATE_LIMIT`` | ``per_host_rate_limit`` (req/s) | ``2`` |
| ``FASTREQ_TIMEOUT`` | ``timeout`` (total seconds; ``none`` = no limit) | ``30`` |
| ``FASTREQ_HTTP2`` | ``http2`` | ``0`` |
| ``FASTREQ_VERIFY_SSL`` | ``verify_ssl`` | ``false`` |
| ``FASTREQ_PROXIES`` | ``proxies`` (comma/newline separated) | ``h1:8080,h2:8080`` |
| ``FASTREQ_USER_AGENTS_FILE`` | ``user_agents`` (a file, one per line) | ``agents.txt`` |
| ``FASTREQ_DEBUG`` | ``debug`` | ``1`` |
| ``FASTREQ_PROGRESS`` | ``progress`` | ``1`` |

Example::

    FASTREQ_CONCURRENCY=100 FASTREQ_TIMEOUT=15 python crawl.py
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from fastreq.exceptions import ConfigurationError
from fastreq.timeouts import Timeout
from fastreq.utils.proxies import proxies_from_env

__all__ = ["DEFAULT_TIMEOUT", "GlobalConfig"]

#: Applied when no timeout is given: 10 s to connect, 60 s for the whole request.
#: ``timeout=None`` must be said explicitly to wait forever.
DEFAULT_TIMEOUT = Timeout(connect=10.0, total=60.0)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r}: expected one of 1/0, true/false, yes/no, on/off")


def _number(kind: Callable[[str], Any], minimum: float) -> Callable[[str, str], Any]:
    def parse(name: str, value: str) -> Any:
        try:
            number = kind(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r}: expected a number") from None
        if not number >= minimum:
            raise ConfigurationError(f"{name}={value!r}: must be >= {minimum}")
        return number

    return parse


def _timeout(name: str, value: str) -> Timeout | None:
    if value.strip().lower() in ("none", "0", "off"):
        return None
    return Timeout(total=_number(float, 0.001)(name, value))


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "backend": lambda name, value: value.strip(),
    "concurrency": _number(int, 1),
    "max_retries": _number(int, 0),
    "rate_limit": _number(float, 1e-9),
    "rate_limit_burst": _number(int, 1),
    "per_host_concurrency": _number(int, 1),
    "per_host_rate_limit": _number(float, 1e-9),
    "timeout": _timeout,
    "http2": _bool,
    "verify_ssl": _bool,
    "debug": _bool,
    "progress": _bool,
    "user_agents_file": lambda name, value: value.strip(),
}


@dataclass(frozen=True)
class GlobalConfig:
    """The ``FASTREQ_*`` settings found in the environment (``None``: not set)."""

    backend: str | None = None
    concurrency: int | None = None
    max_retries: int | None = None
    rate_limit: float | None = None
    rate_limit_burst: int | None = None
    per_host_concurrency: int | None = None
    per_host_rate_limit: float | None = None
    timeout: Timeout | str | None = "unset"
    http2: bool | None = None
    verify_ssl: bool | None = None
    proxies: tuple[str, ...] | None = None
    user_agents_file: str | None = None
    debug: bool | None = None
    progress: bool | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GlobalConfig:
        """Read ``FASTREQ_*`` variables; a malformed value is a :class:`ConfigurationError`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            var = f"FASTREQ_{field.name.upper()}"
            if field.name == "proxies":
                if env.get(var, "").strip():
                    values["proxies"] = tuple(proxies_from_env(dict(env)))
                continue
            raw = env.get(var)
            if raw is not None and raw.strip():
                values[field.name] = _PARSERS[field.name](var, raw)
        return cls(**values)

    def pick(self, name: str, given: Any, builtin: Any) -> Any:
        """``given`` unless it is the built-in default and the environment sets ``name``."""
        env_value = getattr(self, name)
        unset = env_value == "unset" if name == "timeout" else env_value is None
        if unset or (given is not builtin and given != builtin):
            return given
        return env_value
