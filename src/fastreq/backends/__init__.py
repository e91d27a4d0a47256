"""Backend registry: names, auto-detection and lazy imports with install hints.

Example::

    from fastreq.backends import available_backends, create_backend

    print(available_backends())          # e.g. ['curl', 'aiohttp', 'httpx']
    backend = create_backend("aiohttp")   # a fastreq.backends.aiohttp.AiohttpBackend
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass

from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig
from fastreq.exceptions import ConfigurationError

__all__ = [
    "AUTO_ORDER",
    "Backend",
    "NormalizedResponse",
    "RequestConfig",
    "available_backends",
    "backend_class",
    "create_backend",
]

_log = logging.getLogger("fastreq.backends")


@dataclass(frozen=True)
class _Entry:
    module: str
    cls: str
    library: str  # the import name of the HTTP library it needs
    extra: str  # pip extra that installs it


_REGISTRY: dict[str, _Entry] = {
    "curl": _Entry("fastreq.backends.curl", "CurlBackend", "pycurl", "curl"),
    "aiohttp": _Entry("fastreq.backends.aiohttp", "AiohttpBackend", "aiohttp", "aiohttp"),
    "niquests": _Entry("fastreq.backends.niquests", "NiquestsBackend", "niquests", "niquests"),
    "requests": _Entry("fastreq.backends.requests", "RequestsBackend", "requests", "requests"),
    "httpx": _Entry("fastreq.backends.httpx", "HttpxBackend", "httpx", "httpx"),
}

#: ``backend="auto"`` takes the first installed one, fastest first (measured on loopback,
#: see DESIGN.md "Speed").
AUTO_ORDER: tuple[str, ...] = ("curl", "aiohttp", "niquests", "requests", "httpx")


def _installed(name: str) -> bool:
    entry = _REGISTRY[name]
    try:
        return importlib.util.find_spec(entry.library) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Names of the backends whose HTTP library is installed, in auto-detection order."""
    return [name for name in AUTO_ORDER if name in _REGISTRY and _installed(name)]


def backend_class(name: str) -> type[Backend]:
    """The class for backend ``name``; :class:`ConfigurationError` with a hint if missing."""
    if name == "auto":
        found = available_backends()
        if not found:
            raise ConfigurationError(
                "no HTTP backend is installed: pip install 'fastreq[curl]' (fastest) or one "
                f"of {', '.join(repr(f'fastreq[{n}]') for n in AUTO_ORDER)}"
            )
        skipped = [n for n in AUTO_ORDER if n not in found]
        if skipped and skipped[0] == AUTO_ORDER[0]:
            _log.debug("backend=auto: %s not installed, using %s", skipped[0], found[0])
        name = found[0]
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ConfigurationError(
            f"unknown backend {name!r}; choose one of 'auto', {', '.join(map(repr, _REGISTRY))} "
            "or pass a Backend instance"
        )
    if not _installed(name):
        raise ConfigurationError(
            f"backend {name!r} needs the {entry.library!r} package: "
            f"pip install 'fastreq[{entry.extra}]'"
        )
    module = importlib.import_module(entry.module)
    cls: type[Backend] = getattr(module, entry.cls)
    return cls


def create_backend(backend: str | Backend = "auto", *, http2: bool = True) -> Backend:
    """A backend instance from a name (``"auto"``, ``"aiohttp"``...) or an instance as is."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise ConfigurationError(
            f"backend must be a name or a fastreq Backend instance, got {type(backend).__name__}"
        )
    return backend_class(backend)(http2_enabled=http2)
