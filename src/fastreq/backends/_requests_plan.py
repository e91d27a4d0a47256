"""The requests backend's per-request plan (encoded request + time budget) and the helpers
that look after a request's worker-thread future."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastreq.backends._common import build_url, encode_body, outgoing_headers
from fastreq.backends._requests_errors import TotalTimeout
from fastreq.backends.base import RequestConfig
from fastreq.timeouts import Timeout

__all__ = [
    "Abandoned",
    "RequestPlan",
    "close_response_of",
    "encode_into",
    "expire_if_queued",
    "may_resend",
    "sending",
]


@dataclass(slots=True)
class RequestPlan:
    """One request, encoded, with its time budget."""

    url: str
    body: bytes | None
    headers: dict[str, str]
    proxies: dict[str, str] | None
    timeouts: Timeout | None
    created: float
    deadline: float | None
    abandoned: bool = False  # set when the awaiting coroutine gave up (timeout, cancel)
    pool_expired: bool = False  # no worker thread picked the request up within Timeout.pool

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - 0.001

    def library_timeout(self) -> tuple[float | None, float | None]:
        """``(connect, read)`` for requests, each clamped to what is left of ``total``."""
        t = self.timeouts
        if t is None:
            return None, None
        connect, read = t.connect, t.read
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TotalTimeout()
            connect = left if connect is None else min(connect, left)
            read = left if read is None else min(read, left)
        return connect, read


def expire_if_queued(future: concurrent.futures.Future[Any], plan: RequestPlan) -> None:
    # Still waiting for a worker thread after Timeout.pool: give up on it.
    if future.cancel():
        plan.pool_expired = True


def close_response_of(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


#: the request being sent in this thread (by ``RequestsBackend._open``), for ``may_resend``
sending = threading.local()


def may_resend() -> bool:
    """Whether urllib3 may resend the request of this thread on a fresh connection: not
    once the request was given up. Its worker thread runs on (requests cannot be stopped
    mid-call), and when the backend is closed under it, its socket with it, urllib3 sees
    a dead connection: a resend then would reach the server after the caller moved on."""
    plan: RequestPlan | None = getattr(sending, "plan", None)
    return plan is None or not plan.abandoned


class Abandoned(Exception):
    """The request was given up (its coroutine cancelled) between two redirect hops: the
    worker thread stops there. Nobody awaits it, so nobody sees it either."""


def encode_into(plan: RequestPlan, config: RequestConfig) -> None:
    """Put ``config``'s URL, body and headers, encoded, into ``plan``."""
    plan.url = build_url(config.url, config.params)
    plan.body, content_type = encode_body(config)
    plan.headers = outgoing_headers(config, content_type)
