"""Hostile and broken servers: every backend turns each fault into an error for that input.

Each test runs once per installed backend against the raw-socket fault server of
``tests/_faults.py``; every backend passes every test (no known gaps, no xfails).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import pytest

from fastreq import PartialFailureError, fastreq
from fastreq.backends import create_backend
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    ConnectError,
    ConnectTimeoutError,
    PoolTimeoutError,
    RequestTimeoutError,
    ResponseDecodeError,
    TransportError,
)

from ._faults import BOMB_SIZE, FaultServer, bomb, run_configs, run_one
from ._server import TestServer

LIMIT = 10.0
_NOT_SENT = (ConnectError, ConnectTimeoutError, PoolTimeoutError)

MALFORMED = [
    "/reset",
    "/reset-mid-body",
    "/close-before-status",
    "/short-body",
    "/conflicting-length",
    "/bad-chunked",
    "/truncated-chunked",
    "/header-nul",
    "/header-cr",
]


def _run(backend_name: str, *configs: RequestConfig) -> list[NormalizedResponse | BaseException]:
    return run_configs(backend_name, *configs)


def _one(backend_name: str, url: str, **options: Any) -> NormalizedResponse | BaseException:
    return run_one(backend_name, url, LIMIT, **options)


# -- truncated, malformed, conflicting -----------------------------------------------------


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_response_is_a_transport_error(
    backend_name: str, faults: FaultServer, path: str
) -> None:
    out = _one(backend_name, faults.url + path)
    assert isinstance(out, TransportError), repr(out)
    assert not isinstance(out, _NOT_SENT), repr(out)  # it was sent: never "safe to resend"
    assert isinstance(out, BackendError) and out.backend_name == backend_name
    assert str(out)


def test_header_injection_in_a_response_never_reaches_the_caller(
    backend_name: str, faults: FaultServer
) -> None:
    for path in ("/header-crlf", "/header-cr", "/header-nul"):
        out = _one(backend_name, faults.url + path)
        if isinstance(out, NormalizedResponse):
            for name, value in out.header_items:
                for bad in "\r\n\x00":
                    assert bad not in name and bad not in value, (path, name, value)
        else:
            assert isinstance(out, TransportError), repr(out)


def test_batch_goes_on_and_each_fault_is_its_own_failure(
    backend_name: str, faults: FaultServer
) -> None:
    urls = [faults.url + "/ok"] + [faults.url + p for p in MALFORMED] + [faults.url + "/ok"]
    with pytest.raises(PartialFailureError) as info:
        fastreq(urls, backend=backend_name, max_retries=0, timeout=LIMIT, return_type="text")
    exc = info.value
    assert exc.total == len(urls)
    assert exc.results[0] == "ok" and exc.results[-1] == "ok"
    assert exc.results[1:-1] == [None] * len(MALFORMED)
    failed = sorted(f.url for f in exc.failures)
    assert failed == sorted(faults.url + p for p in MALFORMED)
    for failure in exc.failures:
        assert isinstance(failure.error, TransportError), (failure.url, repr(failure.error))


# -- stale keep-alive ----------------------------------------------------------------------


def test_stale_keepalive_get_is_retried_once(backend_name: str, faults: FaultServer) -> None:
    outs = _run(backend_name, *[RequestConfig(faults.url + "/stale", timeout=LIMIT)] * 2)
    assert [getattr(o, "status_code", o) for o in outs] == [200, 200]
    # first request, the reuse the server dropped, the resend on a fresh connection
    assert [(r.conn - faults.records[0].conn, r.nth) for r in faults.records] == [
        (0, 1), (0, 2), (1, 1)
    ]


def test_stale_keepalive_post_is_not_resent(backend_name: str, faults: FaultServer) -> None:
    config = RequestConfig(faults.url + "/stale", method="POST", data=b"pay once", timeout=LIMIT)
    first, second = _run(backend_name, config, config)
    assert isinstance(first, NormalizedResponse) and first.status_code == 200
    assert isinstance(second, TransportError), repr(second)
    assert not isinstance(second, _NOT_SENT), repr(second)
    assert [r.method for r in faults.records] == ["POST", "POST"]  # never a third


@pytest.mark.parametrize("path", [*MALFORMED, "/garbage"])
def test_fault_on_a_fresh_connection_is_not_resent(
    backend_name: str, faults: FaultServer, path: str
) -> None:
    # Only a reused keep-alive connection may have gone stale: a request that failed on a
    # connection of its own is that input's error at once (fastreq's retry policy, not the
    # backend, decides whether to try again).
    for method in ("GET", "PUT"):
        faults.reset()
        out = _one(backend_name, faults.url + path, method=method)
        assert isinstance(out, TransportError), (method, repr(out))
        assert not isinstance(out, _NOT_SENT), (method, repr(out))
        assert [(r.method, r.path) for r in faults.records] == [(method, path)]


def test_a_request_given_up_is_never_resent(backend_name: str, faults: FaultServer) -> None:
    # Given up (cancelled) with no answer yet; then the server drops the connection. A
    # worker thread still waiting on it must not take that for a stale keep-alive
    # connection and resend the request: to nobody, into whatever test runs by then.
    async def main() -> None:
        async with create_backend(backend_name) as backend:
            config = RequestConfig(faults.url + "/close-before-status?after=0.4", timeout=LIMIT)
            task = asyncio.create_task(backend.request(config))
            for _ in range(100):
                if faults.records:  # sent
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.8)  # the connection dropped, a resend made (if any)

    asyncio.run(main())
    assert faults.paths() == ["/close-before-status"]


# -- slow drip and silence -----------------------------------------------------------------


def test_drip_and_silence_are_cut_off_by_the_total_timeout(
    backend_name: str, faults: FaultServer
) -> None:
    slow = ["/drip?interval=0.05", "/drip-head?interval=0.05", "/never"]
    urls = [faults.url + p for p in slow] + [faults.url + "/ok"]
    start = time.monotonic()
    with pytest.raises(PartialFailureError) as info:
        fastreq(urls, backend=backend_name, max_retries=0, timeout=1.0, return_type="text")
    assert time.monotonic() - start < 8  # limit enforced, nothing hung
    exc = info.value
    assert exc.results[-1] == "ok"
    assert len(exc.failures) == 3
    for failure in exc.failures:
        assert isinstance(failure.error, RequestTimeoutError), repr(failure.error)


# -- decompression -------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_decompression_bomb_fails_that_input(
    backend_name: str, faults: FaultServer, encoding: str
) -> None:
    bomb(encoding)  # build it before measuring
    tracemalloc.start()
    try:
        out = _one(backend_name, faults.url + f"/bomb/{encoding}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(out, BackendError), repr(out)[:200]
    # the default cap (100 MiB) stops it before the whole bomb (200 MiB) is ever held
    assert peak < BOMB_SIZE * 3 // 4, f"peak memory {peak >> 20} MiB"


def test_decompressed_size_cap_is_configurable(
    backend_name: str, faults: FaultServer
) -> None:
    small = _one(backend_name, faults.url + "/chain5", max_body_size=100)
    assert isinstance(small, NormalizedResponse) and small.content == b"layered"
    out = _one(backend_name, faults.url + "/bomb/gzip", max_body_size=1 << 20)
    assert isinstance(out, ResponseDecodeError), repr(out)[:200]
    assert "1048576" in str(out)


def test_plain_body_over_the_cap_fails_that_input(backend_name: str, server: TestServer) -> None:
    """max_body_size holds for unencoded bodies too: with a Content-Length or without one."""
    ok = _one(backend_name, server.url("/bytes/1000"), max_body_size=1000)
    assert isinstance(ok, NormalizedResponse) and len(ok.content) == 1000, repr(ok)[:200]
    for path, cap in (("/bytes/1001", 1000), ("/feed/40?interval=0", 100)):
        out = _one(backend_name, server.url(path), max_body_size=cap)
        assert isinstance(out, ResponseDecodeError), (path, repr(out)[:200])
        assert str(cap) in str(out)


def test_five_chained_encodings_decoded(
    backend_name: str, faults: FaultServer
) -> None:
    out = _one(backend_name, faults.url + "/chain5")
    assert isinstance(out, NormalizedResponse) and out.content == b"layered"


def test_six_chained_encodings_rejected(
    backend_name: str, faults: FaultServer
) -> None:
    out = _one(backend_name, faults.url + "/chain6")
    assert isinstance(out, ResponseDecodeError), repr(out)
