"""The curl lane as the producer of results as they complete (``fastreq._curl_lane_feed``):
``client.stream()``, ``fastreq_iter()``, ``request(..., journal=...)`` and the CLI's fetch give
the same outcomes, sleeps and server hits through the lane as through the general path; the
lane is actually taken; backpressure, cancellation and the journal's exactly-once hold."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pycurl")

from fastreq import FastRequests, Request, RetryConfig, _curl_lane, fastreq, fastreq_iter
from fastreq._inputs import FileInput

from ._clock import FakeClock
from ._server import TestServer
from .test_curl_lane import _error_key, _hits

N = _curl_lane.MIN_BATCH + 8


def _plain(value: Any) -> Any:
    if hasattr(value, "status_code"):  # a response
        return (value.status_code, value.content, value.url)
    return value


def _stream(inputs: Callable[[], Iterable[Any]], lane_on: bool, **options: Any
            ) -> tuple[list[Any], int, FakeClock]:
    """``client.stream`` on a fake clock: (outcomes by index, streams through the lane, clock)."""
    clock = FakeClock()
    client_options: dict[str, Any] = {"retry": RetryConfig(max_retries=2, jitter=0),
                                      "concurrency": 8, "backend": "curl"}
    for name in ("concurrency", "backend", "max_redirects", "progress_callback"):
        if name in options:
            client_options[name] = options.pop(name)
    before = _curl_lane.stats["streams"]
    saved = _curl_lane.enabled
    _curl_lane.enabled = lane_on

    async def main() -> list[Any]:
        async with FastRequests(sleep=clock.sleep, clock=clock, **client_options) as client:
            return [(r.index, r.key, r.url, r.status, _plain(r.value),
                     _error_key(r.error) if r.error is not None else None, r.attempts,
                     r.replayed)
                    async for r in client.stream(inputs(), **options)]

    try:
        outcomes = asyncio.run(main())
    finally:
        _curl_lane.enabled = saved
    return sorted(outcomes, key=lambda o: o[0]), _curl_lane.stats["streams"] - before, clock


def _same(server: TestServer, inputs: Callable[[], Iterable[Any]], **options: Any
          ) -> list[Any]:
    """Through the lane and the general path: same outcomes, sleeps and server hits."""
    server.reset()
    lane, used, lane_clock = _stream(inputs, True, **dict(options))
    lane_hits = _hits(server)
    server.reset()
    general, unused, general_clock = _stream(inputs, False, **dict(options))
    assert (used, unused) == (1, 0)
    assert lane == general
    assert sorted(lane_clock.sleeps) == sorted(general_clock.sleeps)
    assert lane_hits == _hits(server)
    return lane


def test_stream_of_a_list_mixed_outcomes(server: TestServer, refused_url: str) -> None:
    paths = ["/json/{i}", "/text", "/status/404", "/flaky/s{i}/{r}?retry_after={a}",
             "/status/500", "/redirect/2", "/gzip", "/redirect-to?url=http://[::1&status=302",
             "/redirect/9", "/problem"]

    def inputs() -> list[str]:
        return [server.url(paths[i % len(paths)].format(i=i, r=i % 3, a=i % 2))
                if i % 13 else refused_url for i in range(3 * N)]

    out = _same(server, inputs, max_redirects=3)
    assert [o[0] for o in out] == list(range(3 * N))
    assert out[10][4] == {"n": 10} and out[10][3] == 200 and out[1][4] == "hello"
    assert out[4][5] is not None and out[4][5][0] == "RetryExhaustedError" and out[4][3] == 500
    assert out[13][5] is not None and out[13][5][0] == "ConnectError" and out[13][3] is None
    _same(server, inputs, return_type="response")
    _same(server, inputs, return_type="content", parse_func=len)


def test_lazy_inputs_bad_ones_and_a_handoff_to_the_general_path(server: TestServer,
                                                                tmp_path: Path) -> None:
    lines = [server.url(f"/json/{i}") for i in range(N)]
    lines[3] = "not a url"
    lines[5] = "ftp://example.com/x"
    lines[7] = '{"url": 5}'  # a bad JSON line: that input's failure
    path = tmp_path / "urls.txt"
    path.write_text("\n".join(lines) + "\n")
    out = _same(server, lambda: FileInput(str(path)))
    assert [o[0] for o in out] == list(range(N))
    assert [o[0] for o in out if o[5] is not None] == [3, 5, 7]
    assert all(o[6] == 0 for o in out if o[5] is not None)

    def generator() -> Iterator[Any]:  # a Request with its own headers: the general path's
        for i in range(3 * N):
            if i == 2 * N:
                yield Request(server.url("/echo"), headers={"X-Mine": "1"}, key="echo")
            else:
                yield Request(server.url(f"/json/{i}"), key=f"k{i}") if i % 2 else \
                    server.url(f"/json/{i}")

    def parse(data: dict[str, Any]) -> Any:  # (a User-Agent is picked at random: not it)
        return data["n"] if "n" in data else data["headers"].get("x-mine")

    out = _same(server, generator, parse_func=parse)
    assert [o[0] for o in out] == list(range(3 * N))
    assert out[2 * N][1] == "echo" and out[2 * N][4] == "1"
    assert out[1][1] == "k1" and out[1][4] == 1


def test_progress_is_driven_the_same(server: TestServer) -> None:
    calls: dict[bool, list[tuple[int, int | None]]] = {True: [], False: []}
    for lane_on in (True, False):
        def record(done: int, total: int | None, lane_on: bool = lane_on) -> None:
            calls[lane_on].append((done, total))

        urls = [server.url("/json") if i % 5 else server.url("/status/500") for i in range(N)]
        _, used, _ = _stream(lambda urls=urls: urls, lane_on, progress_callback=record)
        assert used == int(lane_on)
    assert calls[True] == calls[False] and calls[True][-1] == (N, N)


def test_request_with_a_journal_goes_through_the_lane(server: TestServer,
                                                      tmp_path: Path) -> None:
    urls = [server.url(f"/json/{i}") if i % 7 else server.url("/status/404")
            for i in range(N)]
    results = {}
    for lane_on in (True, False):
        saved, _curl_lane.enabled = _curl_lane.enabled, lane_on
        before = _curl_lane.stats["streams"]
        try:
            results[lane_on] = fastreq(urls, backend="curl", journal=tmp_path / f"{lane_on}.db",
                                       return_none_on_failure=True)
            assert _curl_lane.stats["streams"] - before == int(lane_on)
            again = fastreq(urls, backend="curl", journal=tmp_path / f"{lane_on}.db",
                            return_none_on_failure=True)
        finally:
            _curl_lane.enabled = saved
        assert again == results[lane_on]
    assert results[True] == results[False] and results[True][1] == {"n": 1}


def test_journal_resumes_exactly_once_after_a_break(server: TestServer,
                                                    tmp_path: Path) -> None:
    n = 300
    urls = [server.url(f"/json/{i}") for i in range(n)]
    journal = tmp_path / "job.db"
    seen = []
    for r in fastreq_iter(iter(urls), backend="curl", concurrency=8, journal=journal):
        seen.append(r.index)
        if len(seen) == 100:
            break
    first = Counter(int(h.path.rsplit("/", 1)[1]) for h in server.hits_for("/json/"))
    server.reset()
    before = _curl_lane.stats["streams"]
    rows = list(fastreq_iter(iter(urls), backend="curl", concurrency=8, journal=journal))
    assert _curl_lane.stats["streams"] == before + 1
    assert Counter(r.index for r in rows) == Counter(range(n))  # every input exactly once
    assert all(r.ok and r.value == {"n": r.index} for r in rows)
    replayed = {r.index for r in rows if r.replayed}
    assert set(seen) <= replayed
    fetched = Counter(int(h.path.rsplit("/", 1)[1]) for h in server.hits_for("/json/"))
    assert set(fetched) == set(range(n)) - replayed  # a stored outcome is never fetched again
    # a request of the first run still on its way when it was cancelled may reach the server
    # after the reset (at most one per transfer in flight): the rest were fetched once
    assert max(fetched.values()) <= 2 and sum(fetched.values()) - len(fetched) <= 8
    assert replayed <= set(first)


_KILLED = textwrap.dedent("""
    import json, sys
    from fastreq import fastreq_iter, _curl_lane

    base, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    urls = (f"{base}/json/{i}" for i in range(n))
    for r in fastreq_iter(urls, backend="curl", concurrency=8, journal=journal):
        print(json.dumps({"index": r.index, "ok": r.ok, "value": r.value,
                          "replayed": r.replayed}), flush=True)
    print(json.dumps({"streams": _curl_lane.stats["streams"]}), flush=True)
""")


def test_kill_9_mid_run_then_resume_exactly_once(server: TestServer, tmp_path: Path) -> None:
    import sqlite3

    from fastreq._journal import BATCH_ROWS

    n = 3000
    script = tmp_path / "job.py"
    script.write_text(_KILLED)
    journal = tmp_path / "job.db"
    args = [sys.executable, str(script), server.base, str(journal), str(n)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(BATCH_ROWS + 300):
        json.loads(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    db = sqlite3.connect(journal)
    try:
        done = {row[0] for row in db.execute("SELECT idx FROM outcomes")}
    finally:
        db.close()
    assert 0 < len(done) < n
    server.reset()
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    *rows, tail = [json.loads(line) for line in out.stdout.splitlines()]
    assert tail == {"streams": 1}  # the resumed run went through the lane
    assert Counter(r["index"] for r in rows) == Counter(range(n))
    assert all(r["ok"] and r["value"] == {"n": r["index"]} for r in rows)
    assert {r["index"] for r in rows if r["replayed"]} == done
    fetched = Counter(int(h.path.rsplit("/", 1)[1]) for h in server.hits_for("/json/"))
    assert set(fetched) == set(range(n)) - done  # a stored outcome is never fetched again
    # (a request of the killed run may reach the server after the reset: one per transfer)
    assert max(fetched.values()) <= 2 and sum(fetched.values()) - len(fetched) <= 8


def test_cli_fetch_lines_are_the_same(server: TestServer, tmp_path: Path) -> None:
    from fastreq._cli_stream import stream_fetch

    path = tmp_path / "urls.txt"
    path.write_text("\n".join(server.url(f"/json/{i}") if i % 9 else server.url("/status/404")
                              for i in range(2 * N)) + "\n")
    lines = {}
    for lane_on in (True, False):
        saved, _curl_lane.enabled = _curl_lane.enabled, lane_on
        before = _curl_lane.stats["streams"]
        out = io.BytesIO()
        try:
            summary = stream_fetch(FileInput(str(path)), out, {"backend": "curl"},
                                   {"journal": str(tmp_path / f"{lane_on}.db")})
        finally:
            _curl_lane.enabled = saved
        assert _curl_lane.stats["streams"] - before == int(lane_on)
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        lines[lane_on] = sorted(({k: v for k, v in r.items() if k != "elapsed"} for r in rows),
                                key=lambda r: r["index"])
        assert summary.tally.statuses[404] == len(range(0, 2 * N, 9))
    assert lines[True] == lines[False] and len(lines[True]) == 2 * N


def test_a_slow_consumer_holds_the_lane_back(server: TestServer) -> None:
    async def main() -> tuple[int, int]:
        async with FastRequests(backend="curl", concurrency=4) as client:
            results = client.stream(server.url(f"/json/{i}") for i in range(2000))
            first = await results.__anext__()
            assert first.ok
            for _ in range(50):  # the consumer takes nothing meanwhile
                await asyncio.sleep(0.01)
            held = len(server.hits_for("/json/"))
            rest = [r async for r in results]
            return held, 1 + len(rest)

    before = _curl_lane.stats["streams"]
    held, total = asyncio.run(main())
    assert _curl_lane.stats["streams"] == before + 1
    assert total == 2000
    # queue (64) + the lane's undelivered outcomes (2 x 4, plus a round of 4) + in flight
    assert held <= 64 + 1 + 12 + 4 + 4, held


def test_breaking_out_stops_the_lane_thread(server: TestServer) -> None:
    def lane_threads() -> int:
        return sum(t.name == "fastreq-curl-lane" for t in threading.enumerate())

    assert lane_threads() == 0
    urls = [server.url("/json/0")] + [server.url("/slow?delay=30")] * N
    before = _curl_lane.stats["streams"]
    it = fastreq_iter(urls, backend="curl", concurrency=4)
    assert next(it).index == 0
    it.close()  # must not wait for the 30 s requests
    assert _curl_lane.stats["streams"] == before + 1
    assert lane_threads() == 0

    async def main() -> None:
        async with FastRequests(backend="curl", concurrency=4) as client:
            results = client.stream(server.url(f"/json/{i}") for i in range(10**9))
            async for r in results:
                if r.index >= 100:
                    break
            await results.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert lane_threads() == 0


def test_a_lazy_source_is_read_a_bounded_way_ahead(server: TestServer) -> None:
    pulled = 0

    def urls() -> Iterator[str]:
        nonlocal pulled
        for i in range(3000):
            pulled += 1
            yield server.url(f"/json/{i}")

    before = _curl_lane.stats["streams"]
    ahead = 0
    for received, r in enumerate(fastreq_iter(urls(), backend="curl", concurrency=8), 1):
        assert r.ok
        ahead = max(ahead, pulled - received)
    assert _curl_lane.stats["streams"] == before + 1 and pulled == 3000
    # the queue (64), the lane's undelivered outcomes (2 x 8 + 8), in flight (8) and the
    # inputs handed to its thread ahead (64): never the whole source
    assert ahead <= 64 + 24 + 8 + 64 + 8, ahead
