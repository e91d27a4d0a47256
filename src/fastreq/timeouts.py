"""Timeouts: a number (total seconds) or :class:`Timeout` with one limit per phase.

Example::

    from fastreq import Timeout, fastreq

    fastreq(urls, timeout=10)                                  # 10 s for the whole request
    fastreq(urls, timeout=Timeout(connect=3, read=10, total=30))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastreq.exceptions import ValidationError

__all__ = ["Timeout", "TimeoutLike"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-phase time limits in seconds; ``None`` means no limit for that phase.

    - ``connect``: establishing the connection (TCP + TLS + proxy handshake);
    - ``read``: the longest wait for the next piece of the response;
    - ``total``: the whole request, from sending to the last body byte;
    - ``pool``: waiting for a free connection inside the backend's pool.

    Waiting for a rate-limit token or a concurrency slot in fastreq never counts.
    """

    connect: float | None = None
    read: float | None = None
    total: float | None = None
    pool: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "pool"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError(f"Timeout.{name} must be a number of seconds, got {value!r}")
            if not value > 0 or math.isnan(value):
                raise ValidationError(f"Timeout.{name} must be > 0, got {value!r}")

    @classmethod
    def coerce(cls, value: TimeoutLike) -> Timeout | None:
        """Turn a user value into a :class:`Timeout` (``None`` stays ``None``: no limit)."""
        if value is None or isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(
                f"timeout must be a number of seconds, a fastreq.Timeout or None, got {value!r}"
            )
        return cls(total=float(value))

    @property
    def is_unbounded(self) -> bool:
        return self.connect is None and self.read is None and self.total is None


TimeoutLike = float | int | Timeout | None
