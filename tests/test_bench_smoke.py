"""Smoke test of the benchmark harness (bench/): its pure pieces and one tiny measurement.

Never about speed: nginx and apt are not needed; one raw-aiohttp measurement of 200 requests
runs against a small keep-alive server in a thread, and only its row and zero errors are
checked. The full benchmark is ``python bench/run.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
BODY = b'{"id":1,"name":"fastreq","ok":true}'


def _load(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (bench/ is a directory of scripts, not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the harness's modules import each other by name
    if name.startswith("_"):  # _report, _nginx, _clients: the names run.py imports them by
        return importlib.import_module(name)
    qualified = f"fastreq_bench_{name}"  # run.py: too generic a name for sys.modules
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _load("_report")


@pytest.fixture(scope="module")
def nginx() -> ModuleType:
    return _load("_nginx")


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return _load("run")


# -- pure pieces -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "listen"),
    [((1, 22, 1), "listen 127.0.0.1:8443 ssl http2;"), ((1, 25, 1), "http2 on;")],
)
def test_nginx_conf_renders(nginx: ModuleType, version: tuple[int, ...], listen: str) -> None:
    conf = nginx.render_nginx_conf("/tmp/x", 8080, 8443, version, "/tmp/x/c.pem", "/tmp/x/k.pem")
    for line in ("worker_processes 1;", "daemon off;", "access_log off;",
                 "keepalive_requests 100000;", "listen 127.0.0.1:8080", listen,
                 "ssl_certificate /tmp/x/c.pem;", "access_log /tmp/x/tls_access.log conn;"):
        assert line in conf
    assert "{" in conf and "{{" not in conf  # the template's braces were unescaped


def test_wrk_output_parsed(report: ModuleType) -> None:
    out = """Running 2s test @ http://127.0.0.1:1/small.json
  1 threads and 64 connections
  73137 requests in 2.00s, 21.42MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:  36568.50
Transfer/sec:     10.71MB
"""
    stats = report.parse_wrk(out)
    assert stats["requests"] == 73137
    assert stats["seconds"] == pytest.approx(2.0)
    assert stats["bytes"] == pytest.approx(21.42 * 1024 * 1024)
    assert stats["errors"] == 6


def test_connections_counted(report: ModuleType) -> None:
    lines = ["7 HTTP/2.0 200", "7 HTTP/2.0 200", "9 HTTP/1.1 200", ""]
    assert report.count_connections(lines) == (2, "HTTP/1.1,HTTP/2.0")


def test_table_and_ratios(report: ModuleType) -> None:
    runs = [report.Run(requests=1000, wall=w, cpu=0.05, rss_peak_kb=40 * 1024, errors=0,
                       nbytes=1000 * 1024 * 1024, rss_growth_kb=1024) for w in (0.5, 0.25, 1.0)]
    fast = report.summarize("a", "client a", runs)
    slow = report.summarize("b", "client b", [report.Run.failure(1000, "crashed", "boom")])
    assert fast.rps == (2000.0, 1000.0, 4000.0)
    assert fast.cpu_us == pytest.approx(50.0)
    table = report.render_table([fast, slow], mbps=True, growth=True)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| client a | ") and "2,000 (1,000" in lines[2]
    assert "| 1000 | crashed; boom |" in lines[3]  # a failed run: all its requests are errors
    rows = {"a": fast, "b": slow}
    assert report.ratio_of(rows, "a", "a") == pytest.approx(1.0)
    verdicts = [
        report.Ratio("x", report.ratio_of(rows, "a", "a"), 0.9).verdict,
        report.Ratio("y", 0.5, 0.75).verdict,
        report.Ratio("z", report.ratio_of(rows, "a", "b"), 1.0).verdict,
        report.Ratio("w", 1.0, 4, higher_is_better=False).verdict,
    ]
    assert verdicts == ["PASS", "FAIL", "n/a", "PASS"]
    assert "| x | 1.00" in report.render_ratios([report.Ratio("x", 1.0, 0.9)])


def test_workloads_and_only(run: ModuleType) -> None:
    args = run.parse_args(["--quick", "--only", "small/raw-*,h2"])
    workloads = run.build_workloads(args, None)
    assert [w.key for w in workloads] == ["small", "h2"]
    small = {e.client: e.n for e in workloads[0].entries}
    assert set(small) == {"raw-pycurl", "raw-pycurl-same", "raw-aiohttp", "raw-aiohttp-uvloop",
                          "raw-httpx", "raw-niquests", "raw-requests"}
    assert small["raw-pycurl"] == 5000 and small["raw-httpx"] < 5000
    assert all(e.n == 1000 for e in workloads[1].entries)


def test_large_runs_last_long_enough_for_a_steady_state(run: ModuleType) -> None:
    """1 MiB downloads: 4,000 (quick) / 10,000 for the fast clients, fewer for the slow ones."""
    for argv, fast in ((["--quick"], 4000), ([], 10000)):
        workloads = {w.key: w for w in run.build_workloads(run.parse_args(argv), None)}
        large = {e.client: e.n for e in workloads["large"].entries}
        assert large["fastreq-curl"] == large["raw-pycurl"] == large["raw-aiohttp"] == fast
        assert 0 < large["fastreq-httpx"] < fast and 0 < large["raw-requests"] < fast
    workloads = {w.key: w for w in run.build_workloads(
        run.parse_args(["--quick", "--large-requests", "50"]), None)}
    assert {e.n for e in workloads["large"].entries} == {50}


def test_journal_row_in_the_small_workload_only(run: ModuleType) -> None:
    workloads = {w.key: w for w in run.build_workloads(run.parse_args(["--quick"]), None)}
    small = [e.client for e in workloads["small"].entries]
    at = small.index("fastreq-curl")  # side by side: lane, general path, lane + journal
    assert small[at:at + 3] == ["fastreq-curl", "fastreq-curl-general", "fastreq-curl-journal"]
    assert small[at - 1] == "raw-pycurl-same"
    large = [e.client for e in workloads["large"].entries]
    assert not {"fastreq-curl-journal", "fastreq-curl-general", "raw-pycurl-same"} & set(large)
    rows = {"small/fastreq-curl-journal": _row(run, 900.0),
            "small/fastreq-curl-general": _row(run, 1000.0),
            "small/fastreq-curl": _row(run, 1500.0), "small/raw-pycurl-same": _row(run, 2000.0)}
    info = dict(run.info_ratios(rows))
    assert info["small: fastreq(curl) with journal / without (the journal's cost)"] == 0.6
    assert info["small: fastreq(curl) lane / general path (the fast lane's gain)"] == 1.5
    assert info["small: fastreq(curl) / raw pycurl sending fastreq's request"] == 0.75


def _row(run: ModuleType, rps: float) -> Any:
    report = _load("_report")
    r = report.Run(requests=int(rps), wall=1.0, cpu=0.5, rss_peak_kb=1, errors=0, nbytes=1,
                   first_error="", loop="asyncio", rss_growth_kb=0)
    return report.summarize("x", "x", [r])


@pytest.mark.timeout(60)
def test_fastreq_bench_runs_the_checkouts_bench_script() -> None:
    """``fastreq bench`` from this checkout finds and runs bench/run.py (``--list``: no nginx)."""
    import fastreq
    from fastreq._cli_bench import repo_bench_script

    if Path(fastreq.__file__).resolve().parent != BENCH.parent / "src" / "fastreq":
        pytest.skip("fastreq is not imported from this checkout")
    assert repo_bench_script() == BENCH / "run.py"
    proc = subprocess.run([sys.executable, "-m", "fastreq", "bench", "--", "--list"],
                          capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"fastreq bench: running {BENCH / 'run.py'} --quick --list"
    assert lines[1:2] == ["small"]
    ids = {line.split()[0] for line in lines if line.startswith("  ")}
    assert {"small/fastreq-curl", "small/fastreq-curl-journal", "large/fastreq-curl",
            "h2/fastreq-curl-h2"} <= ids


def test_readme_table_replaced_between_markers(run: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run.MARK_START}\nold\n{run.MARK_END}\noutro\n")
    run.update_readme(readme, "# fastreq benchmark\n\n## 1. Small\n\n| a |\n")
    text = readme.read_text()
    assert "old" not in text
    assert "intro\n" in text and text.endswith(f"{run.MARK_END}\noutro\n")
    assert "## fastreq benchmark\n\n### 1. Small\n\n| a |\n" in text


# -- one tiny measurement --------------------------------------------------------------------
class _KeepAlive(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every request (GET, no body) gets the JSON body."""

    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

    def __init__(self, transports: set[asyncio.BaseTransport]) -> None:
        self.transports = transports
        self.buf = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transports.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        count = self.buf.count(b"\r\n\r\n")
        if count:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(self.response * count)


@pytest.fixture
def json_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    transports: set[asyncio.BaseTransport] = set()
    server = loop.run_until_complete(
        loop.create_server(lambda: _KeepAlive(transports), "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/small.json"
    finally:
        async def shutdown() -> None:
            server.close()
            for t in list(transports):
                t.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.timeout(30)
def test_one_client_measured(report: ModuleType, json_server: str) -> None:
    pytest.importorskip("aiohttp")
    clients = _load("_clients")
    spec = {"client": "raw-aiohttp", "kind": "json", "url": json_server, "n": 200, "conc": 8,
            "expect_body": BODY.decode(), "warmup": 16}
    data = clients.measure(spec)
    run = report.Run(
        requests=data["requests"], wall=data["wall"], cpu=data["cpu"],
        rss_peak_kb=data["rss_peak_kb"], errors=data["errors"], nbytes=data["nbytes"],
        first_error=data["first_error"], loop=data["loop"],
        rss_growth_kb=data["rss_growth_kb"],
    )
    row = report.summarize("raw-aiohttp", "raw aiohttp", [run])
    assert row.errors == 0, row.notes
    assert run.nbytes == 200 * len(BODY)
    line = report.render_table([row]).splitlines()[-1]
    assert line.startswith("| raw aiohttp | asyncio | 200 | ")
    assert line.endswith("| 0 |  |")


@pytest.mark.timeout(60)
def test_journal_client_measured(report: ModuleType, json_server: str) -> None:
    """The ``fastreq (curl) with journal`` row, for real: every response checked, no error."""
    pytest.importorskip("pycurl")
    clients = _load("_clients")
    spec = {"client": "fastreq-curl-journal", "kind": "json", "url": json_server, "n": 300,
            "conc": 8, "expect_body": BODY.decode(), "warmup": 16}
    data = clients.measure(spec)
    assert (data["errors"], data["first_error"]) == (0, "")
    assert data["requests"] == 300 and data["nbytes"] == 300 * len(BODY)
