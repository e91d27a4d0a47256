"""Responses of the aiohttp backend, with header normalization deferred to first use.

Lower-casing and joining aiohttp's header multidict costs ~2 µs per response, and a bulk
fetch mostly reads the status and the body. :class:`AiohttpResponse` (a
:class:`NormalizedResponse` in every respect) keeps aiohttp's case-insensitive multidict and
builds ``header_items`` / ``headers`` the first time either is read; ``has_header`` and
``get_all`` answer from the multidict directly (the same answers). When the base class does
not store those two as plain slots (its layout changed), responses are built eagerly.
"""

from __future__ import annotations

from typing import Any

from fastreq.backends._lazy_response import HEADERS as _HEADERS
from fastreq.backends._lazy_response import ITEMS as _ITEMS
from fastreq.backends._lazy_response import LAZY, assemble
from fastreq.backends.base import NormalizedResponse, is_json_content_type

__all__ = ["AiohttpResponse", "make_response"]

#: names asked for on every response (the cookie jar's): lower-case ASCII already
_LOWER_NAMES = frozenset({"set-cookie", "location", "content-type"})
#: is_json_content_type() of the Content-Type values seen (a handful per program)
_JSON_TYPES: dict[str, bool] = {}


class AiohttpResponse(NormalizedResponse):
    """A :class:`NormalizedResponse` over aiohttp's header multidict, normalized on demand."""

    __slots__ = ("_raw",)
    _raw: Any  # aiohttp's CIMultiDictProxy (None once normalized)

    def _normalize(self) -> None:
        raw = self._raw
        items = [(k.lower(), v if v.__class__ is str else str(v)) for k, v in raw.items()]
        joined: dict[str, str] = {}
        for key, value in items:
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        _ITEMS.__set__(self, items)
        _HEADERS.__set__(self, joined)
        self._raw = None

    @property
    def header_items(self) -> list[tuple[str, str]]:
        if self._raw is not None:
            self._normalize()
        value: list[tuple[str, str]] = _ITEMS.__get__(self, AiohttpResponse)
        return value

    @header_items.setter
    def header_items(self, value: list[tuple[str, str]]) -> None:
        self._raw = None
        _ITEMS.__set__(self, value)

    @property
    def headers(self) -> dict[str, str]:
        if self._raw is not None:
            self._normalize()
        value: dict[str, str] = _HEADERS.__get__(self, AiohttpResponse)
        return value

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        if self._raw is not None:
            self._normalize()  # header_items stay the received ones, as on the base class
        _HEADERS.__set__(self, value)

    def has_header(self, name: str) -> bool:
        raw = self._raw
        if raw is not None:
            if name in _LOWER_NAMES:
                return name in raw
            if name.isascii():  # header names are ASCII tokens
                return name == name.lower() and name in raw  # the base: lower-case keys
        return name in self.headers

    def get_all(self, name: str) -> list[str]:
        raw = self._raw
        if raw is not None and name.isascii():
            return [v if v.__class__ is str else str(v) for v in raw.getall(name, ())]
        return super().get_all(name)


def make_response(
    status: int,
    raw: Any,
    content: bytes,
    url: str,
    http_version: str | None,
    elapsed: float,
) -> NormalizedResponse:
    """The response for aiohttp's ``status``, header multidict ``raw`` and body."""
    types = raw.getall("Content-Type", ())
    if not types:
        is_json = False
    else:  # a repeated Content-Type reads as the joined value, as on the base class
        content_type = types[0] if len(types) == 1 else ", ".join(types)
        known = _JSON_TYPES.get(content_type)
        if known is None:
            known = is_json_content_type(content_type)
            if len(_JSON_TYPES) < 256:
                _JSON_TYPES[content_type] = known
        is_json = known
    if not LAZY:
        return NormalizedResponse(
            status, raw, content, url=url, is_json=is_json, http_version=http_version,
            elapsed=elapsed,
        )
    r = assemble(AiohttpResponse, status, content, url, is_json, http_version, elapsed)
    r._raw = raw
    return r
