"""Reading a ``requests.Response`` for :mod:`fastreq.backends.requests`: the decoded body in
bounded chunks, a followed redirect's body read raw and dropped, the normalized response."""

from __future__ import annotations

import time
from collections.abc import Iterator

import requests
import urllib3.exceptions

from fastreq.backends._decode import BoundedDecoder
from fastreq.backends._redirects import DRAIN_LIMIT
from fastreq.backends._requests_plan import RequestPlan
from fastreq.backends.base import NormalizedResponse, RequestConfig

__all__ = ["CHUNK", "chunks", "discard", "normalize"]

CHUNK = 64 * 1024
_VERSIONS = {10: "HTTP/1.0", 11: "HTTP/1.1", 20: "HTTP/2", 30: "HTTP/3"}


def chunks(resp: requests.Response, config: RequestConfig, name: str) -> Iterator[bytes]:
    """The decoded body in chunks. urllib3 inflates a zstd frame whole, so a compressed
    body is read raw and decoded by _decode's bounded decoder (pieces of 64 KiB)."""
    encoding = resp.headers.get("Content-Encoding")
    if not encoding:
        return resp.iter_content(CHUNK)
    return _decoded(resp, BoundedDecoder(encoding, None, backend_name=name, url=config.url))


def _decoded(resp: requests.Response, decoder: BoundedDecoder) -> Iterator[bytes]:
    errors = urllib3.exceptions
    try:
        for chunk in resp.raw.stream(CHUNK, decode_content=False):
            yield from decoder.feed(chunk)
    # wrapped as requests' iter_content does, for map_error
    except errors.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except errors.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except errors.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    yield from decoder.flush()


def discard(resp: requests.Response, plan: RequestPlan) -> None:
    """Drop the body of a redirect being followed, then close ``resp``.

    Read raw (never decoded) up to ``DRAIN_LIMIT`` bytes, so that the connection goes back
    to the pool; a longer body, a read error, the request's deadline or its abandonment
    stop the reading and the connection is closed instead. A read error is not the
    request's failure: this body is dropped anyway and the next hop is sent.
    """
    size = 0
    try:
        for chunk in resp.raw.stream(CHUNK, decode_content=False):
            size += len(chunk)
            if size > DRAIN_LIMIT or plan.abandoned or (
                plan.deadline is not None and time.monotonic() > plan.deadline
            ):
                break
    except (urllib3.exceptions.HTTPError, OSError):
        pass
    finally:
        resp.close()


def normalize(resp: requests.Response, content: bytes, started: float) -> NormalizedResponse:
    raw = resp.raw
    return NormalizedResponse(
        resp.status_code,
        list(raw.headers.items()),  # urllib3's items() keeps repeated headers apart
        content,
        url=resp.url,
        http_version=_VERSIONS.get(getattr(raw, "version", 0)),
        elapsed=time.monotonic() - started,
    )
