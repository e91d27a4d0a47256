"""``fastreq bench``: the repository's benchmark when it is there, else a small built-in one.

With an editable install (the package lives in ``<repo>/src/fastreq``) and ``<repo>/bench/run.py``
present, ``fastreq bench`` runs ``bench/run.py --quick`` (nginx, every client, the report of
issue 4). Installed from a wheel there is no ``bench/``: the built-in quick benchmark fetches
the embedded demo server's ``/item/{n}`` (``fastreq serve`` in a child process) with every installed
backend and prints requests per second side by side (the server is in-process Python, so the
figures are a comparison of backends, not their ceiling).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from fastreq._cli_fetch import run_batch
from fastreq.backends import available_backends

__all__ = ["builtin_bench", "repo_bench_script", "run_repo_bench"]


def repo_bench_script() -> Path | None:
    """``<repo>/bench/run.py`` when fastreq runs from a source checkout, else ``None``."""
    package = Path(__file__).resolve().parent  # <repo>/src/fastreq
    script = package.parent.parent / "bench" / "run.py"
    return script if script.is_file() else None


def run_repo_bench(script: Path, extra: Sequence[str]) -> int:
    """Run ``script --quick EXTRA`` with this interpreter; its exit status."""
    return subprocess.call([sys.executable, str(script), "--quick", *extra])


def builtin_bench(count: int, concurrency: int, backends: Sequence[str] | None,
                  echo: Callable[[str], None]) -> int:
    """Fetch ``count`` small JSON URLs per backend from the embedded server; print req/s."""
    names = list(backends) if backends else available_backends()
    if not names:
        echo("no HTTP backend installed: pip install 'fastreq[curl]'")
        return 1
    code = 0
    echo(f"{'backend':<10}{'requests':>10}{'seconds':>10}{'req/s':>10}  failed")
    with _server_process() as base:
        urls = [f"{base}/item/{n}" for n in range(count)]
        for name in names:
            run_batch(urls[: min(50, count)], {"backend": name, "concurrency": concurrency},
                      {})  # warm-up: imports, first connections
            started = time.perf_counter()
            outcome = run_batch(urls, {"backend": name, "concurrency": concurrency,
                                       "max_retries": 0}, {})
            seconds = time.perf_counter() - started
            failed = len(outcome.failures)
            if failed:
                code = 1
            echo(f"{name:<10}{count:>10}{seconds:>10.2f}{count / seconds:>10,.0f}  {failed}")
    return code


@contextlib.contextmanager
def _server_process() -> Iterator[str]:
    """``fastreq serve --port 0`` in a child process (not sharing our GIL); its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "fastreq", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "fastreq demo server on http://127.0.0.1:PORT (...)"
        words = first.split()
        if len(words) < 5 or not words[4].startswith("http://"):
            raise RuntimeError(f"the demo server did not start: {first!r}")
        yield words[4]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
