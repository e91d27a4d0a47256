"""Responses assembled slot by slot, their headers normalized on first use.

Building a :class:`NormalizedResponse` through ``__init__`` normalizes every header at once
(~2-4 µs of Python per response); a bulk fetch mostly reads the status and the body. The
curl and aiohttp backends keep the received headers raw in a subclass that fills
``header_items`` / ``headers`` when first read, and assemble it here without ``__init__``.
That is only done while the base class stores exactly the slots known here (:data:`LAZY`);
after any change of its layout the backends build eager responses, always correct.
"""

from __future__ import annotations

from types import MemberDescriptorType
from typing import Any, TypeVar

from fastreq.backends.base import NormalizedResponse

__all__ = ["HEADERS", "ITEMS", "LAZY", "assemble"]

#: the base class's own slot descriptors, read and set directly by the lazy subclasses
ITEMS: Any = NormalizedResponse.__dict__.get("header_items")
HEADERS: Any = NormalizedResponse.__dict__.get("headers")
_KNOWN_SLOTS = frozenset({
    "_json", "_text", "content", "elapsed", "header_items", "headers", "http_version",
    "is_json", "status_code", "url",
})
#: the base class's layout is the one :func:`assemble` fills
LAZY = (
    isinstance(ITEMS, MemberDescriptorType) and isinstance(HEADERS, MemberDescriptorType)
    and frozenset(NormalizedResponse.__slots__) == _KNOWN_SLOTS
)
_MISSING_JSON: Any = NormalizedResponse(200)._json
_new = object.__new__
R = TypeVar("R", bound=NormalizedResponse)


def assemble(cls: type[R], status: int, content: bytes, url: str, is_json: bool,
             http_version: str | None, elapsed: float) -> R:
    """A ``cls`` response with every base slot set but the two header ones (the caller sets
    its raw headers); only when :data:`LAZY`."""
    r: Any = _new(cls)
    r.status_code = status
    r.content = content
    r.url = url
    r.is_json = is_json
    r._text = None
    r._json = _MISSING_JSON
    r.http_version = http_version
    r.elapsed = elapsed
    return r  # type: ignore[no-any-return]
