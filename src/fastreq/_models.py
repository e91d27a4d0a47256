"""Public value types: :class:`Request`, :class:`ReturnType`, :class:`FailureDetails`,
:class:`Result`."""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["FailureDetails", "Request", "Result", "ReturnType"]


class ReturnType(str, enum.Enum):
    """What each result is.

    - ``JSON`` (default): the parsed body when the response is JSON by Content-Type
      (``application/json`` or any ``+json``), otherwise the decoded text;
    - ``TEXT``: the body decoded with the response's charset (UTF-8 fallback);
    - ``CONTENT``: the raw body bytes;
    - ``RESPONSE``: the whole :class:`~fastreq.NormalizedResponse` (status, headers...);
    - ``STREAM``: the body is never held: each chunk goes to ``stream_callback(chunk, index)``
      as it arrives and the result is the response with an empty ``content`` (status,
      headers). An empty chunk ``b""`` means a retry starts: drop what that index got so far.
    """

    JSON = "json"
    TEXT = "text"
    CONTENT = "content"
    RESPONSE = "response"
    STREAM = "stream"


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


@dataclass(slots=True)
class Result:
    """One input's outcome, as yielded by ``client.stream()`` / ``fastreq_iter()``.

    ``value`` is what ``return_type`` asks for (the file path with ``download_dir=``);
    ``error`` is ``None`` on success, else the exception (``value`` is then ``None``).
    ``status`` is the HTTP status of the last response (``None`` when none came back),
    ``attempts`` how many times it was sent, ``elapsed`` the seconds from the input's start
    (limiter waits and retries included) to its outcome. ``replayed`` is ``True`` for an
    outcome read back from a journal instead of fetched.

    Example::

        for r in fastreq_iter(urls):
            if r.ok:
                print(r.index, r.status, r.value)
            else:
                print(r.index, "failed after", r.attempts, "attempts:", r.error)
    """

    index: int
    key: Hashable | None
    url: str
    status: int | None
    value: Any
    error: BaseException | None
    attempts: int
    elapsed: float
    replayed: bool = False

    @property
    def ok(self) -> bool:
        """``True`` when the input produced a value (a 404 is a value: check ``status``)."""
        return self.error is None
