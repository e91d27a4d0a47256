"""The ``fastreq`` command end to end, in subprocesses, against the embedded DemoServer."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastreq
from fastreq._cli_demo import Mix, unexpected_outcomes
from fastreq._cli_fetch import BatchOutcome
from fastreq._demo_server import DemoServer
from fastreq._models import FailureDetails
from fastreq.backends import AUTO_ORDER, available_backends
from fastreq.backends.base import NormalizedResponse
from fastreq.exceptions import ConnectError

BACKENDS = available_backends()
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no HTTP backend installed")


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m fastreq ARGS`` with warnings as errors; never inherits a terminal."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run(
        [sys.executable, "-m", "fastreq", *args],
        input=stdin if stdin is not None else "", capture_output=True, text=True,
        timeout=60, env=env, check=False,
    )


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def demo_server() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


# -- the embedded server itself ---------------------------------------------------------
def test_demo_server_routes_and_keep_alive(demo_server: DemoServer) -> None:
    demo_server.reset()
    conn = http.client.HTTPConnection("127.0.0.1", demo_server.port, timeout=10)
    try:
        def get(path: str, method: str = "GET", body: bytes | None = None
                ) -> tuple[int, dict[str, str], Any]:
            conn.request(method, path, body=body, headers={"X-Probe": "1"})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), json.loads(data) if data else None

        status, headers, body = get("/item/7")
        assert (status, body) == (200, {"id": 7, "name": "item 7", "price": 7})
        assert headers["content-type"] == "application/json"
        status, headers, _ = get("/flaky/1")
        assert (status, headers["retry-after"]) == (503, "0")
        assert get("/flaky/1")[0] == 200
        assert get("/flaky/1")[0] == 200
        assert get("/missing/3")[0] == 404
        assert get("/fail/3")[0] == 500
        assert get("/status/418")[0] == 418
        status, headers, _ = get("/redirect/4")
        assert (status, headers["location"]) == (302, "/item/4")
        assert get("/slow/1")[2]["id"] == 1
        assert get("/nope")[0] == 404
        status, _, echoed = get("/echo/x?a=1&b=", "PUT", b'{"k": "v"}')
        assert status == 200
        assert echoed["method"] == "PUT"
        assert echoed["path"] == "/echo/x"
        assert echoed["query"] == [["a", "1"], ["b", ""]]
        assert echoed["headers"]["x-probe"] == "1"
        assert echoed["json"] == {"k": "v"}
    finally:
        conn.close()
    assert demo_server.hits == 11  # all on one keep-alive connection
    assert demo_server.route_hits["flaky"] == 3
    assert demo_server.route_hits["item"] == 1
    demo_server.reset()
    assert demo_server.hits == 0


def test_demo_server_restarts_on_a_new_port() -> None:
    server = DemoServer().start()
    try:
        with urllib.request.urlopen(server.url("/item/1"), timeout=10) as resp:
            assert json.load(resp)["id"] == 1
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.start().start()
    server.stop()


# -- demo -------------------------------------------------------------------------------
def test_demo_end_to_end() -> None:
    proc = run_cli("demo", "--count", "200", "--concurrency", "20", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # 200 URLs: 10 slow, 10 flaky, 6 missing, 1 fail, 173 item.
    assert "total        200" in out
    assert "succeeded    199" in out
    assert "failed       1  (RetryExhaustedError (HTTP 500): 1)" in out
    assert "statuses     200: 193, 404: 6, 500: 1" in out
    # each flaky URL is retried once, the /fail URL three times
    assert "retries      13  (the server answered 213 HTTP requests for 200 URLs)" in out
    assert f"backend      {BACKENDS[0]} (picked by --backend auto" in out
    assert "URLs/s" in out
    assert "OK: every outcome is as expected" in out


def test_demo_flags_unexpected_outcomes() -> None:
    mix = Mix(["u/item/0", "u/missing/1", "u/fail/2", "u/item/3", "u/flaky/4"],
              ["item", "missing", "fail", "item", "flaky"])
    outcome = BatchOutcome(
        "fake",
        [NormalizedResponse(200), NormalizedResponse(200), NormalizedResponse(500), None,
         NormalizedResponse(200)],
        {3: FailureDetails(3, None, "u/item/3", ConnectError("refused"), 4)},
        1.0,
    )
    assert unexpected_outcomes(mix, outcome) == [
        "u/missing/1: expected HTTP 404, got 200",
        "u/fail/2: expected a failure, got HTTP 500",
        "u/item/3: ConnectError: refused",
    ]


# -- fetch ------------------------------------------------------------------------------
FIELDS = {"index", "url", "status", "elapsed", "attempts", "error", "body", "replayed"}


def by_index(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines sorted by input index, after checking each index comes exactly once."""
    indexes = [line["index"] for line in lines]
    assert sorted(indexes) == list(range(len(lines))), "indexes not unique 0..N-1"
    return sorted(lines, key=lambda line: line["index"])


def test_fetch_file_to_output_file(demo_server: DemoServer, tmp_path: Path) -> None:
    urls = [demo_server.url(p) for p in
            ("/item/1", "/missing/2", "/flaky/103", "/redirect/4", "/slow/5", "/item/1")]
    source = tmp_path / "urls.txt"
    source.write_text("# a comment\n\n" + "\n".join(f"  {u}  " for u in urls) + "\n\n",
                      encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = run_cli("fetch", str(source), "-o", str(out), "--timeout", "10")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = by_index(jsonl(out.read_text(encoding="utf-8")))
    assert len(lines) == len(urls)
    for index, (line, url) in enumerate(zip(lines, urls, strict=True)):
        assert set(line) == FIELDS
        assert line["index"] == index
        assert line["url"] == url
        assert line["error"] is None
        assert line["replayed"] is False
        assert line["elapsed"] >= 0
    assert [line["status"] for line in lines] == [200, 404, 200, 200, 200, 200]
    assert [line["attempts"] for line in lines] == [1, 1, 2, 1, 1, 1]  # real, successes too
    assert lines[0]["body"] == {"id": 1, "name": "item 1", "price": 1}
    assert lines[2]["body"] == {"id": 103, "flaky": True}  # after one retry
    assert lines[3]["body"]["id"] == 4  # redirect followed
    summary = proc.stderr.strip().splitlines()
    assert len(summary) == 1
    assert "6 URLs" in summary[0]
    assert "6 ok, 0 failed" in summary[0]
    assert "statuses 200: 5, 404: 1" in summary[0]
    assert "retries 1" in summary[0]


def test_fetch_stdin_completion_order(demo_server: DemoServer) -> None:
    urls = [demo_server.url(f"/item/{n}") for n in range(60)]
    for args in (["fetch", "-", "-c", "8", "--no-redirects"], ["fetch", "--quiet"]):
        proc = run_cli(*args, stdin="\n".join(urls) + "\n")
        assert proc.returncode == 0, proc.stderr
        lines = by_index(jsonl(proc.stdout))
        assert [line["url"] for line in lines] == urls
        assert [line["body"]["id"] for line in lines] == list(range(60))
    assert proc.stderr == ""  # --quiet


def test_fetch_many_from_file_and_stdin(demo_server: DemoServer, tmp_path: Path) -> None:
    n = 2000
    text = "".join(demo_server.url(f"/item/{i}") + "\n" for i in range(n))
    source = tmp_path / "urls.txt"
    source.write_text(text, encoding="utf-8")
    for args, stdin in ((["fetch", str(source), "-c", "50"], None),
                        (["fetch", "-", "-c", "50", "--no-body"], text)):
        proc = run_cli(*args, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        lines = by_index(jsonl(proc.stdout))
        assert len(lines) == n
        assert all(line["status"] == 200 and line["attempts"] == 1 for line in lines)
        assert f"{n} URLs" in proc.stderr


def test_fetch_no_redirects_and_no_body(demo_server: DemoServer) -> None:
    proc = run_cli("fetch", "--no-redirects", "--no-body", stdin=demo_server.url("/redirect/9"))
    assert proc.returncode == 0, proc.stderr
    [line] = jsonl(proc.stdout)
    assert (line["status"], line["body"]) == (302, None)


def test_fetch_redirect_and_body_limits(demo_server: DemoServer) -> None:
    urls = [demo_server.url("/redirect/9"), demo_server.url("/item/1")]
    proc = run_cli("fetch", "--max-redirects", "0", "--max-body-size", "10", "--retries", "0",
                   stdin="\n".join(urls))
    assert proc.returncode == 1, proc.stderr
    hops, big = by_index(jsonl(proc.stdout))
    assert "TooManyRedirectsError" in hops["error"], hops
    assert "ResponseDecodeError" in big["error"] and "10 bytes" in big["error"], big
    ok = run_cli("fetch", "--max-redirects", "1", "--max-body-size", "0", stdin=urls[0])
    assert ok.returncode == 0, ok.stderr
    assert jsonl(ok.stdout)[0]["status"] == 200


def test_fetch_failures_exit_1(demo_server: DemoServer) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/"
    urls = [demo_server.url("/item/1"), refused, demo_server.url("/fail/1")]
    proc = run_cli("fetch", "--retries", "0", "--timeout", "10", stdin="\n".join(urls))
    assert proc.returncode == 1
    assert "fastreq: error: 2 of 3 URLs failed" in proc.stderr
    assert "errors " in proc.stderr and "RetryExhaustedError (HTTP 500): 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok, failed, exhausted = by_index(jsonl(proc.stdout))
    assert (ok["status"], ok["error"], ok["body"]["id"]) == (200, None, 1)
    assert failed["url"] == refused
    assert failed["status"] is None
    assert failed["error"].startswith("ConnectError: ")
    assert failed["attempts"] == 1
    assert failed["body"] is None
    assert exhausted["error"].startswith("RetryExhaustedError: ")
    assert exhausted["status"] == 500  # the last response
    assert exhausted["attempts"] == 1


def test_fetch_bad_lines_fail_alone(demo_server: DemoServer) -> None:
    stdin = f"{demo_server.url('/item/1')}\nnot a url\nftp://example.com/x\n"
    proc = run_cli("fetch", stdin=stdin)
    assert proc.returncode == 1
    assert "fastreq: error: 2 of 3 URLs failed" in proc.stderr
    ok, spaced, ftp = by_index(jsonl(proc.stdout))
    assert ok["status"] == 200
    assert spaced["error"].startswith("ValidationError: stdin, line 2: URL contains whitespace")
    assert "unsupported URL scheme 'ftp'" in ftp["error"]
    assert (spaced["attempts"], ftp["attempts"]) == (0, 0)


def test_fetch_download_dir(demo_server: DemoServer, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    urls = [demo_server.url(f"/item/{n}") for n in range(5)] + [demo_server.url("/missing/9")]
    proc = run_cli("fetch", "--download-dir", str(pages), stdin="\n".join(urls))
    assert proc.returncode == 0, proc.stderr
    lines = by_index(jsonl(proc.stdout))
    for n, line in enumerate(lines[:5]):
        assert "body" not in line
        assert json.loads(Path(line["path"]).read_text(encoding="utf-8"))["id"] == n
        assert Path(line["path"]).parent == pages
    assert lines[5]["status"] == 404
    assert Path(lines[5]["path"]).is_file()
    assert len(list(pages.iterdir())) == 6


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_fetch_journal_resumes_after_sigkill(demo_server: DemoServer, tmp_path: Path) -> None:
    n = 400
    urls = [demo_server.url(f"/slow/{i}") for i in range(n)]  # 50-200 ms each
    source = tmp_path / "urls.txt"
    source.write_text("\n".join(urls) + "\n", encoding="utf-8")
    journal, out1, out2 = tmp_path / "job.db", tmp_path / "out1.jsonl", tmp_path / "out2.jsonl"
    args = ["fetch", str(source), "-c", "20", "--journal", str(journal), "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    demo_server.reset()
    first = subprocess.Popen([sys.executable, "-m", "fastreq", *args, "-o", str(out1)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and first.poll() is None:
            if out1.exists() and out1.read_bytes().count(b"\n") >= 160:  # ~1 s in
                break
            time.sleep(0.02)
        assert first.poll() is None, "the first run ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    done_before = jsonl(out1.read_bytes().decode().rpartition("\n")[0])  # whole lines
    assert 160 <= len(done_before) < n
    assert len({line["index"] for line in done_before}) == len(done_before)

    demo_server.reset()
    proc = run_cli(*args, "-o", str(out2))
    assert proc.returncode == 0, proc.stderr
    lines = by_index(jsonl(out2.read_text(encoding="utf-8")))  # every input exactly once
    assert [line["url"] for line in lines] == urls
    assert all(line["status"] == 200 and line["error"] is None for line in lines)
    replayed = [line for line in lines if line["replayed"]]
    fetched = [line for line in lines if not line["replayed"]]
    assert 0 < len(replayed) < n  # what the journal had committed when the kill came
    assert demo_server.hits == len(fetched)  # the replayed ones were not fetched again
    first_run = {line["index"]: line for line in done_before}
    for line in replayed:  # their stored outcome, as the first run got it
        assert line["body"] == {"id": line["index"], "slept": line["body"]["slept"]}
        if line["index"] in first_run:
            assert line["body"] == first_run[line["index"]]["body"]
            assert line["elapsed"] == first_run[line["index"]]["elapsed"]
    assert f"{len(replayed)} replayed from the journal" in proc.stderr

    demo_server.reset()  # a third run: everything is done, nothing fetched
    proc = run_cli(*args, "-o", str(out2))
    assert proc.returncode == 0, proc.stderr
    assert demo_server.hits == 0
    assert len(by_index(jsonl(out2.read_text(encoding="utf-8")))) == n


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("-H", "no colon"), "http://127.0.0.1:9/\n", "header must look like 'Name: value'"),
        (("-X", "BAD METHOD"), "http://127.0.0.1:9/\n", "invalid HTTP method"),
        (("--proxy", "ftp://proxy"), "http://127.0.0.1:9/\n", "unsupported proxy scheme"),
    ],
)
def test_fetch_invalid_input_exit_2(
    demo_server: DemoServer, args: tuple[str, ...], stdin: str, message: str
) -> None:
    before = demo_server.hits
    proc = run_cli("fetch", *args, stdin=stdin)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fastreq: error: ")
    assert message in lines[0]
    assert demo_server.hits == before  # nothing was sent


def test_fetch_bad_usage_exit_2(tmp_path: Path) -> None:
    for args in (
        ["fetch", "--json", "{not json"],
        ["fetch", "--json", "1", "--data", "x"],
        ["fetch", str(tmp_path / "missing.txt")],
        ["fetch", "--backend", "nope"],
        ["fetch", "--retry-failed"],
    ):
        proc = run_cli(*args, stdin="http://127.0.0.1:9/\n")
        assert proc.returncode == 2, args
        assert "Error:" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_fetch_headers_and_body_reach_the_server(demo_server: DemoServer, backend: str) -> None:
    payload = {"a": [1, 2], "text": "café"}
    proc = run_cli(
        "fetch", "--backend", backend, "-H", "X-Fastreq-Test: yes",
        "-H", "Authorization: Bearer t0k3n", "--json", json.dumps(payload),
        stdin=demo_server.url("/echo?q=1") + "\n",
    )
    assert proc.returncode == 0, proc.stderr
    [line] = jsonl(proc.stdout)
    echoed = line["body"]
    assert echoed["method"] == "POST"  # --json implies POST
    assert echoed["query"] == [["q", "1"]]
    assert echoed["headers"]["x-fastreq-test"] == "yes"
    assert echoed["headers"]["authorization"] == "Bearer t0k3n"
    assert echoed["headers"]["content-type"].startswith("application/json")
    assert echoed["json"] == payload
    assert f"with {backend}:" in proc.stderr

    proc = run_cli("fetch", "--backend", backend, "-X", "put", "--data", "plain body",
                   stdin=demo_server.url("/echo") + "\n")
    assert proc.returncode == 0, proc.stderr
    [line] = jsonl(proc.stdout)
    assert (line["body"]["method"], line["body"]["body"]) == ("PUT", "plain body")


# -- backends, help, version, serve -----------------------------------------------------
def test_backends_listing() -> None:
    proc = run_cli("backends")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:] if line
            and not line.startswith("auto")}
    assert rows == {name: "yes" if name in BACKENDS else "no" for name in AUTO_ORDER}
    assert f"auto -> {BACKENDS[0]}" in proc.stdout

    proc = run_cli("backends", "--json")
    data = json.loads(proc.stdout)
    assert data["auto"] == BACKENDS[0]
    assert [b["name"] for b in data["backends"] if b["installed"]] == BACKENDS


def test_help_and_version() -> None:
    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"fastreq {fastreq.__version__}")
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("demo", "fetch", "bench", "backends", "serve"):
        assert command in proc.stdout
        sub = run_cli(command, "--help")
        assert sub.returncode == 0
        assert "Example" in sub.stdout
        assert f"fastreq {command}" in sub.stdout
    fetch_help = run_cli("fetch", "--help").stdout
    for option in ("--journal", "--retry-failed", "--download-dir", "--per-host-concurrency",
                   "--per-host-rate-limit", "--burst", "--proxies-file", "--progress"):
        assert option in fetch_help
    assert "fastreq fetch big.txt -o out.jsonl --journal job.db" in fetch_help


def test_bench_builtin() -> None:
    proc = run_cli("bench", "--builtin", "--count", "100", "--backend", BACKENDS[0])
    assert proc.returncode == 0, proc.stderr
    first, header, row = proc.stdout.splitlines()
    assert first.startswith("fastreq bench: built-in quick benchmark (--builtin)")
    assert header.split() == ["backend", "requests", "seconds", "req/s", "failed"]
    assert row.split()[:2] == [BACKENDS[0], "100"]
    assert row.split()[-1] == "0"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_serve_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastreq", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        base = first.split()[4]
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "/item/5", timeout=10) as resp:
            assert json.load(resp)["id"] == 5
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("stopped")
