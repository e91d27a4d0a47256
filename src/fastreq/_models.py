"""Public value types: :class:`Request`, :class:`ReturnType`, :class:`FailureDetails`."""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["FailureDetails", "Request", "ReturnType"]


class ReturnType(str, enum.Enum):
    """What each result is.

    - ``JSON`` (default): the parsed body when the response is JSON by Content-Type
      (``application/json`` or any ``+json``), otherwise the decoded text;
    - ``TEXT``: the body decoded with the response's charset (UTF-8 fallback);
    - ``CONTENT``: the raw body bytes;
    - ``RESPONSE``: the whole :class:`~fastreq.NormalizedResponse` (status, headers...).
    """

    JSON = "json"
    TEXT = "text"
    CONTENT = "content"
    RESPONSE = "response"


@dataclass(slots=True)
class Request:
    """One input that carries its own method, body or headers.

    Fields left at ``None`` fall back to the batch's request options; ``headers`` are laid
    over the batch's headers. ``key`` names the result when the batch returns a dict.

    Example::

        fastreq([
            Request("https://api.example.com/items", method="POST", json={"a": 1}, key="new"),
            Request("https://api.example.com/items/1", key="first"),
        ])
        # -> {"new": {...}, "first": {...}}
    """

    url: str
    method: str | None = None
    params: dict[str, Any] | None = None
    data: Any = None
    json: Any = None
    headers: dict[str, str] | None = None
    key: Hashable | None = None


@dataclass(slots=True)
class FailureDetails:
    """One failed input: where it was, what it was, what went wrong, after how many tries."""

    index: int
    key: Hashable | None
    url: str
    error: BaseException
    attempts: int

    @property
    def response(self) -> Any:
        """The last response when retries ran out on a 429/5xx, else ``None``."""
        return getattr(self.error, "last_response", None)
