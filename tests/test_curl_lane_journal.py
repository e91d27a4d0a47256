"""``request(list, journal=...)`` through the curl lane in bulk (``fastreq._journal_lane``): the
same results, failures, journal rows and replays as the general path; a value recorded as the
raw JSON body reads back as the value returned; kill -9 and resume, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pycurl")

from fastreq import (
    ConfigurationError,
    FastRequests,
    JournaledError,
    PartialFailureError,
    Request,
    RetryConfig,
    _curl_lane,
    fastreq_iter,
)

from ._clock import FakeClock
from ._server import TestServer
from .test_curl_lane import _hits

N = _curl_lane.MIN_BATCH + 8
_ROWS = "SELECT idx, key, url, status, ok, error, attempts, kind, value FROM outcomes ORDER BY idx"


def _rows(journal: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(journal)
    try:
        return db.execute(_ROWS).fetchall()
    finally:
        db.close()


def _kind(error: BaseException) -> str:
    """The failure's class name (a replayed one's: the original's)."""
    return error.kind if isinstance(error, JournaledError) else type(error).__name__


def _request(inputs: list[Any], journal: Path, lane_on: bool, progress: Any = None,
             **options: Any) -> tuple[list[Any], list[Any], int]:
    """``client.request(inputs, journal=...)`` on a fake clock: (values, failures as
    (index, key, url, error kind, attempts), streams through the lane)."""
    clock = FakeClock()
    saved, _curl_lane.enabled = _curl_lane.enabled, lane_on
    before = _curl_lane.stats["streams"]

    async def main() -> tuple[list[Any], list[Any]]:
        async with FastRequests(backend="curl", concurrency=8, sleep=clock.sleep, clock=clock,
                                retry=RetryConfig(max_retries=2, jitter=0),
                                progress_callback=progress) as client:
            try:
                return await client.request(inputs, journal=journal, **options), []
            except PartialFailureError as exc:
                return exc.results, [(f.index, f.key, f.url, _kind(f.error), f.attempts)
                                     for f in exc.failures]

    try:
        values, failures = asyncio.run(main())
    finally:
        _curl_lane.enabled = saved
    return values, failures, _curl_lane.stats["streams"] - before


def test_bulk_journal_is_the_general_paths(server: TestServer, tmp_path: Path) -> None:
    paths = ["/json/{i}", "/text", "/status/404", "/flaky/s{i}/{r}", "/gzip",
             "/redirect/2", "/problem", "/status/500"]

    def inputs() -> list[Any]:
        items: list[Any] = []
        for i in range(3 * N):
            url = server.url(paths[i % len(paths)].format(i=i, r=i % 3))
            items.append(Request(url) if i % 5 == 0 else url)  # a Request: no row built inline
        return items

    for options in ({}, {"keys": [("key", i) for i in range(3 * N)]}):
        out = {}
        for lane_on in (True, False):
            journal = tmp_path / f"{lane_on}-{len(options)}.db"
            server.reset()
            values, failures, used = _request(inputs(), journal, lane_on, **options)
            assert used == int(lane_on)
            hits = _hits(server)
            rows = _rows(journal)
            server.reset()
            again = _request(inputs(), journal, lane_on, **options)
            assert not _hits(server)  # everything replayed, nothing fetched
            assert again[:2] == (values, failures)
            out[lane_on] = (values, failures, hits, rows)
        assert out[True] == out[False]
        values, failures, _, rows = out[True]
        if options:  # results by key
            values = [values[("key", i)] for i in range(3 * N)]
        assert values[0] == {"n": 0} and values[1] == "hello" and values[2] == {"status": 404}
        assert [f[0] for f in failures] == [i for i in range(3 * N) if i % 8 == 7]
        assert {f[3] for f in failures} == {"RetryExhaustedError"} and failures[0][4] == 3
        assert len(rows) == 3 * N and [r[0] for r in rows] == list(range(3 * N))


def test_progress_of_a_journaled_request(server: TestServer, tmp_path: Path) -> None:
    calls: dict[bool, list[tuple[int, int | None]]] = {True: [], False: []}
    urls = [server.url("/json") if i % 5 else server.url("/status/500") for i in range(3 * N)]
    for lane_on in (True, False):
        def record(done: int, total: int | None, lane_on: bool = lane_on) -> None:
            calls[lane_on].append((done, total))

        _, failures, used = _request(urls, tmp_path / f"{lane_on}.db", lane_on, record)
        assert used == int(lane_on) and len(failures) == len(range(0, 3 * N, 5))
    assert calls[True] == calls[False] and calls[True][-1] == (3 * N, 3 * N)


_ODD_BODIES = [
    b'{"big": 123456789012345678901234567890, "e": 1.0e2, "neg": -0.0, "z": -0}',
    b' [1.5E-3, "\\u00e9\\ud83d\\ude00", {"a": 1, "a": 2}, null, true]\n',
    b'"just a string"',
    b"12345678901234567890123",
    b'{"deep": [[[[{"x": [0.1, 0.2, 0.30000000000000004]}]]]]}',
]


class _Odd(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _ODD_BODIES[int(self.path.rsplit("/", 1)[1]) % len(_ODD_BODIES)]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def odd_server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_recorded_body_reads_back_as_the_value_returned(odd_server: str,
                                                          tmp_path: Path) -> None:
    urls = [f"{odd_server}/odd/{i}" for i in range(N)]
    first, failures, used = _request(urls, tmp_path / "job.db", True)
    assert used == 1 and failures == []
    assert first[0]["big"] == 1.2345678901234568e29  # as orjson parses it (a float)
    assert first[1][1] == "\u00e9\U0001f600" and first[1][2] == {"a": 2}
    assert first[2] == "just a string"
    replayed, _, _ = _request(urls, tmp_path / "job.db", True)
    assert replayed == first
    assert [type(v) for v in replayed] == [type(v) for v in first]
    assert type(replayed[0]["big"]) is float and type(replayed[3]) is float
    general, _, _ = _request(urls, tmp_path / "general.db", False)
    assert general == first
    for _ in range(2):  # results as they complete: recorded, then replayed, the same way
        streamed = sorted(fastreq_iter(urls, backend="curl", concurrency=4,
                                       journal=tmp_path / "stream.db"), key=lambda r: r.index)
        assert [r.value for r in streamed] == first
        assert [type(r.value) for r in streamed] == [type(v) for v in first]
    assert all(r.replayed for r in streamed)
    for name in ("job.db", "stream.db"):  # the raw body is what was recorded (SQLite keeps
        stored = _rows(tmp_path / name)[0][8]  # the number's own text)
        assert "123456789012345678901234567890" in stored


_KILLED = textwrap.dedent("""
    import json, sys
    from fastreq import fastreq, _curl_lane

    base, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    values = fastreq([f"{base}/json/{i}" for i in range(n)], backend="curl", concurrency=4,
                     journal=journal)
    print(json.dumps({"values": values, "streams": _curl_lane.stats["streams"]}))
""")


def test_kill_9_mid_request_then_resume_exactly_once(server: TestServer,
                                                     tmp_path: Path) -> None:
    n = 8000
    script = tmp_path / "job.py"
    script.write_text(_KILLED)
    journal = tmp_path / "job.db"
    args = [sys.executable, str(script), server.base, str(journal), str(n)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    done: set[int] = set()
    deadline = time.monotonic() + 60
    while not done and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        if journal.exists():
            with contextlib.suppress(sqlite3.OperationalError):  # not set up yet
                done = {row[0] for row in _rows(journal)}
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, some outcomes committed
    done = {row[0] for row in _rows(journal)}
    assert 0 < len(done) < n

    server.reset()
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["streams"] == 1  # the resumed run went through the lane
    assert result["values"] == [{"n": i} for i in range(n)]  # every input exactly once
    fetched = Counter(int(h.path.rsplit("/", 1)[1]) for h in server.hits_for("/json/"))
    assert set(fetched) == set(range(n)) - done  # a stored outcome is never fetched again
    # (a request of the killed run may reach the server after the reset: one per transfer)
    assert max(fetched.values()) <= 2 and sum(fetched.values()) - len(fetched) <= 4
    rows = _rows(journal)
    assert [r[0] for r in rows] == list(range(n))  # one row per input
    assert all(json.loads(r[8]) == {"n": r[0]} for r in rows)


def test_a_journal_of_another_input_is_refused_by_the_lane(server: TestServer,
                                                           tmp_path: Path) -> None:
    urls = [server.url(f"/json/{i}") for i in range(3 * N)]
    first, _, used = _request(urls, tmp_path / "job.db", True)
    assert used == 1 and first == [{"n": i} for i in range(3 * N)]
    urls[2 * N] = server.url("/json/other")  # past the first inputs' fingerprint
    server.reset()
    with pytest.raises(ConfigurationError, match="does not match this input"):
        _request(urls, tmp_path / "job.db", True)  # checked by the lane's thread
    assert not server.hits_for("/json/other")
