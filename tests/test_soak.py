"""Load and faults together: a bounded soak against a local server where some requests are
reset, answered 503 + Retry-After, answered slowly or never answered.

Checked: every input has exactly one outcome; the successes are exactly the inputs the server
answered 200; no file descriptor or memory growth between the first and the last tenth of
the run; no warning. One big run on the fastest backend (curl), a small one per backend.
The figures of the big run are printed (``pytest -s tests/test_soak.py``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator

import pytest

from fastreq import RetryConfig, fastreq_iter
from fastreq.exceptions import RequestTimeoutError, RetryExhaustedError

from ._soak import SoakServer
from .conftest import BACKENDS

BIG = 50_000
SMALL = 1_500


@pytest.fixture
def soak_server() -> Iterator[SoakServer]:
    server = SoakServer()
    yield server
    server.stop()


def _kind(i: int) -> str:
    if i % 1000 == 7:
        return "silent"  # 0.1 %
    return {0: "reset", 1: "busy", 2: "slow"}.get(i % 50, "ok")  # 2 % each


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _soak(server: SoakServer, backend_name: str, n: int, concurrency: int) -> dict[str, object]:
    urls = (f"{server.url}/{_kind(i)}/{i}" for i in range(n))  # a generator: pulled lazily
    seen: dict[int, bool] = {}
    tries: dict[int, int] = {}
    errors: dict[str, int] = {}
    bad_errors: list[str] = []
    samples: dict[str, tuple[int, int]] = {}
    retry = RetryConfig(max_retries=1, backoff_base=0.01, max_delay=0.05, jitter=0.5)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for count, result in enumerate(
            fastreq_iter(urls, backend=backend_name, concurrency=concurrency, retry=retry,
                         timeout=1.0, return_type="json", progress=False), 1
        ):
            assert result.index not in seen, f"input {result.index} had two outcomes"
            seen[result.index] = result.ok
            tries[result.index] = result.attempts
            if result.ok:
                assert result.value == {"i": result.index}
            else:
                name = type(result.error).__name__
                errors[name] = errors.get(name, 0) + 1
                if not isinstance(result.error, (RequestTimeoutError, RetryExhaustedError)):
                    bad_errors.append(repr(result.error))
            if count == n // 10:
                samples["first"] = (_fds(), _rss())
            elif count == n - n // 10:
                samples["last"] = (_fds(), _rss())
    duration = time.monotonic() - start
    assert [str(w.message) for w in caught] == []
    assert len(seen) == n and set(seen) == set(range(n))
    ok = {i for i, good in seen.items() if good}
    served = set(server.served)
    assert ok <= served, "a success the server never answered 200"
    # a 200 the client did not count: only when it had timed out (a race under load)
    assert served - ok <= {i for i, good in seen.items() if not good}
    # a 200 sent twice for one input: only when fastreq sent it again (after a timeout)
    assert all(tries[i] > 1 for i, count in server.served.items() if count > 1)
    silent = {i for i in range(n) if _kind(i) == "silent"}
    assert silent <= set(range(n)) - ok, "a never-answered input succeeded"
    assert bad_errors == []
    (fd0, rss0), (fd1, rss1) = samples["first"], samples["last"]
    # a pool may still be warming up at the first tenth: one connection per worker at most
    assert fd1 <= fd0 + concurrency + 10, f"fds grew from {fd0} to {fd1}"
    assert rss1 <= rss0 + 32 * 1024 * 1024, f"RSS grew from {rss0 >> 20} to {rss1 >> 20} MiB"
    return {
        "backend": backend_name, "requests": n, "duration_s": round(duration, 1),
        "ok": len(ok), "failed": n - len(ok), "errors": errors,
        "attempts": sum(server.attempts.values()), "fds": (fd0, fd1),
        "rss_mib": (rss0 >> 20, rss1 >> 20),
    }


@pytest.mark.skipif("curl" not in BACKENDS, reason="the big soak runs on curl")
def test_big_soak_curl(soak_server: SoakServer) -> None:
    print("\nsoak:", _soak(soak_server, "curl", BIG, concurrency=200))


def test_small_soak(soak_server: SoakServer, backend_name: str) -> None:
    print("\nsoak:", _soak(soak_server, backend_name, SMALL, concurrency=50))
