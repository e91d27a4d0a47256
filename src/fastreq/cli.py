"""The ``fastreq`` command: ``demo``, ``fetch``, ``bench``, ``backends`` and ``serve``.

Run ``fastreq --help`` (or ``python -m fastreq --help``) for the commands and examples.

Exit status: 0 success; 1 some inputs failed (or the demo saw something unexpected);
2 bad usage or invalid input (a one-line message, no traceback).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import IO, Any

import click

from fastreq import __version__
from fastreq._cli_bench import builtin_bench, repo_bench_script, run_repo_bench
from fastreq._cli_demo import run_demo
from fastreq._cli_fetch import parse_header
from fastreq._cli_help import FETCH_HELP, SERVE_HELP
from fastreq._cli_stream import count_inputs, file_input, stdin_input, stream_fetch
from fastreq._demo_server import ROUTES, DemoServer
from fastreq._inputs import FileInput
from fastreq.backends import _REGISTRY, AUTO_ORDER, available_backends
from fastreq.backends.base import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_REDIRECTS
from fastreq.exceptions import ConfigurationError, ValidationError

__all__ = ["cli", "main"]

_BACKENDS = click.Choice(["auto", *AUTO_ORDER])
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _Group(click.Group):
    """Turns fastreq's validation and configuration errors into one line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValidationError, ConfigurationError) as exc:
            click.echo(f"fastreq: error: {_one_line(exc)}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings=_CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fastreq",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """fastreq: fetch many HTTP URLs in parallel, fast, politely, without losing a result.

    \b
    Examples:
      fastreq demo                              # try it: no internet needed
      fastreq fetch urls.txt -o results.jsonl   # one JSON line per URL, as each completes
      cat urls.txt | fastreq fetch --concurrency 100 --rate-limit 50 > out.jsonl
      fastreq backends                          # which HTTP libraries can be used
      fastreq bench                             # a quick benchmark

    Exit status: 0 all went well, 1 some URLs failed, 2 bad usage or invalid input.
    """


# -- demo -------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT,
             short_help="Fetch 2000 URLs from an embedded local server (no internet).")
@click.option("--count", type=click.IntRange(min=1), default=2000, show_default=True,
              help="How many URLs to fetch.")
@click.option("--concurrency", type=click.IntRange(min=1), default=50, show_default=True,
              help="Requests in flight at once.")
@click.option("--backend", type=_BACKENDS, default="auto", show_default=True,
              help="HTTP library to use (see `fastreq backends`).")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="N", help="At most N requests per second (default: no limit).")
@click.option("--progress/--no-progress", default=None,
              help="Live request counter on stderr (default: when stderr is a terminal).")
def demo(count: int, concurrency: int, backend: str, rate_limit: float | None,
         progress: bool | None) -> None:
    """Fetch a few thousand URLs from an embedded local server and summarize.

    Starts fastreq's own HTTP/1.1 server on 127.0.0.1 (no internet needed) with fast,
    slow (50-200 ms), flaky (503 then 200), missing (404) and failing (always 500) routes,
    fetches a mix of them and prints the backend, successes, failures by kind, statuses,
    retries, wall time and rate. Exit status 0 when the only failures are the intentional
    /fail ones, 1 if anything unexpected happened.

    \b
    Examples:
      fastreq demo
      fastreq demo --count 20000 --concurrency 100
      fastreq demo --backend aiohttp --rate-limit 500
    """
    if progress is None:
        progress = sys.stderr.isatty()
    code = run_demo(count=count, concurrency=concurrency, backend=backend,
                    rate_limit=rate_limit, progress=progress, echo=click.echo)
    sys.exit(code)


# -- fetch ------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT, help=FETCH_HELP,
             short_help="Fetch URLs from a file or stdin; write JSON lines as they complete.")
@click.argument("source", metavar="[FILE|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", default="-", show_default=True, metavar="OUT",
              type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write the JSON lines ('-': stdout).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=20, show_default=True,
              help="Requests in flight at once.")
@click.option("--per-host-concurrency", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N requests in flight per host (default: no per-host limit).")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Extra attempts on connection errors, timeouts, 429 and 5xx.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="Time limit per request; 0: none.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="N", help="At most N requests per second in all (default: no limit).")
@click.option("--burst", type=click.IntRange(min=1), default=5, show_default=True,
              help="Requests allowed at once above --rate-limit.")
@click.option("--per-host-rate-limit", type=click.FloatRange(min=0, min_open=True),
              default=None, metavar="N", help="At most N requests per second per host.")
@click.option("--per-host-burst", type=click.IntRange(min=1), default=1, show_default=True,
              help="Requests allowed at once above --per-host-rate-limit.")
@click.option("--backend", type=_BACKENDS, default="auto", show_default=True,
              help="HTTP library to use (see `fastreq backends`).")
@click.option("-X", "--method", default=None, metavar="METHOD",
              help="HTTP method (default: GET, or POST with --data/--json).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="A request header; repeat for more.")
@click.option("-d", "--data", default=None, metavar="TEXT", help="Request body, sent as is.")
@click.option("--json", "json_body", default=None, metavar="JSON",
              help="Request body as a JSON document (sets Content-Type: application/json).")
@click.option("--proxy", default=None, metavar="URL",
              help="Send every request through this proxy (http://, https://, socks5://).")
@click.option("--proxies-file", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="Rotate over the proxies in FILE (one URL per line); failed ones cool down.")
@click.option("--journal", default=None, metavar="DB", type=click.Path(dir_okay=False),
              help="SQLite file recording each outcome; re-run to resume after a crash.")
@click.option("--retry-failed", is_flag=True,
              help="With --journal: fetch the failures recorded by earlier runs again.")
@click.option("--download-dir", default=None, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Stream each body to a file in DIR (created); lines carry its \"path\".")
@click.option("--no-redirects", is_flag=True, help="Return 3xx responses as they are.")
@click.option("--max-redirects", type=click.IntRange(min=0), default=DEFAULT_MAX_REDIRECTS,
              show_default=True, metavar="N", help="Redirect hops per input before it fails.")
@click.option("--max-body-size", type=click.IntRange(min=0), default=DEFAULT_MAX_BODY_SIZE,
              show_default=True, metavar="BYTES",
              help="Decoded body held per response; a bigger one (a decompression bomb) fails "
                   "that input. 0: no cap. --download-dir bodies are streamed, never capped.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--no-body", is_flag=True, help="Write \"body\": null (statuses only).")
@click.option("--progress/--no-progress", default=None,
              help="Live progress bar on stderr (default: when stderr is a terminal).")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def fetch(source: str, output: str, concurrency: int, per_host_concurrency: int | None,
          retries: int, timeout: float, rate_limit: float | None, burst: int,
          per_host_rate_limit: float | None, per_host_burst: int, backend: str,
          method: str | None, headers: tuple[str, ...], data: str | None,
          json_body: str | None, proxy: str | None, proxies_file: str | None,
          journal: str | None, retry_failed: bool, download_dir: str | None,
          no_redirects: bool, max_redirects: int, max_body_size: int, insecure: bool,
          no_body: bool, progress: bool | None, quiet: bool) -> None:
    if data is not None and json_body is not None:
        raise click.UsageError("give either --data or --json, not both")
    if retry_failed and journal is None:
        raise click.UsageError("--retry-failed needs --journal")
    if download_dir is not None and no_body:
        raise click.UsageError("give either --download-dir or --no-body, not both")
    if proxy is not None and proxies_file is not None:
        raise click.UsageError("give either --proxy or --proxies-file, not both")
    body_json: Any = None
    if json_body is not None:
        try:
            body_json = json.loads(json_body)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="'--json'") from None
    header_map = dict(parse_header(h) for h in headers) or None
    inputs = _open_source(source)

    client_options: dict[str, Any] = {
        "backend": backend, "concurrency": concurrency, "max_retries": retries,
        "rate_limit": rate_limit, "rate_limit_burst": burst,
        "per_host_concurrency": per_host_concurrency,
        "per_host_rate_limit": per_host_rate_limit, "per_host_burst": per_host_burst,
        "timeout": timeout or None, "headers": header_map,
        "follow_redirects": not no_redirects, "verify_ssl": not insecure,
        "proxies": proxies_file, "max_redirects": max_redirects,
        "max_body_size": max_body_size or None,
    }
    has_body = data is not None or json_body is not None
    stream_options: dict[str, Any] = {
        "method": method or ("POST" if has_body else "GET"),
        "data": data, "json": body_json, "proxy": proxy,
        "journal": journal, "retry_failed": retry_failed, "download_dir": download_dir,
    }
    if no_body:  # never hold (or journal) bodies: each chunk is dropped as it arrives
        stream_options["return_type"] = "stream"
        stream_options["stream_callback"] = _drop_chunk
    if progress is None:
        progress = sys.stderr.isatty()
    total = count_inputs(source) if progress and source != "-" else None
    out = _open_output(output)
    try:
        summary = stream_fetch(inputs, out, client_options, stream_options,
                               body=not no_body, progress_total=total, progress=progress)
    except BrokenPipeError:  # `fastreq fetch ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    finally:
        if out is not _stdout():
            out.close()
    tally = summary.tally
    if not quiet:
        click.echo(summary.text(), err=True)
    if summary.interrupted:
        hint = " (run the same command again to resume)" if journal else ""
        click.echo(f"fastreq: interrupted after {tally.total} results{hint}", err=True)
        sys.exit(130)
    if tally.failed:
        click.echo(f"fastreq: error: {tally.failed} of {tally.total} URLs failed", err=True)
        sys.exit(1)


def _drop_chunk(chunk: bytes, index: int) -> None:
    """The --no-body stream callback: bodies are not kept."""


def _open_source(source: str) -> FileInput:
    if source == "-":
        if sys.stdin.isatty():
            raise click.UsageError("no URLs: give a FILE, or pipe URLs on stdin")
        return stdin_input()
    try:
        with open(source, "rb"):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source!r}: {exc.strerror}",
                                 param_hint="'FILE'") from None
    return file_input(source)


def _stdout() -> IO[bytes]:
    return sys.stdout.buffer


def _open_output(path: str) -> IO[bytes]:
    if path == "-":
        return _stdout()
    try:
        return open(path, "wb")  # closed by the caller
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path!r}: {exc.strerror}",
                                 param_hint="'-o'") from None


# -- bench ------------------------------------------------------------------------------
@cli.command(context_settings={**_CONTEXT, "ignore_unknown_options": True},
             short_help="Quick benchmark: bench/run.py --quick, or a built-in one.")
@click.option("--builtin", is_flag=True,
              help="Run the built-in benchmark even when bench/run.py is present.")
@click.option("--count", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Built-in: requests per backend.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=64, show_default=True,
              help="Built-in: requests in flight at once.")
@click.option("--backend", "backend_names", multiple=True, type=click.Choice(list(AUTO_ORDER)),
              help="Built-in: only this backend (repeat for more; default: all installed).")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def bench(builtin: bool, count: int, concurrency: int, backend_names: tuple[str, ...],
          extra: tuple[str, ...]) -> None:
    """Run a quick benchmark and print the results.

    From a source checkout (editable install, the repository's bench/run.py next to the
    package) this runs `python bench/run.py --quick` (nginx on 127.0.0.1, every client,
    the report of issue 4; well under 2 minutes); arguments after the options go to it.
    Otherwise (or with --builtin) it runs a small built-in benchmark: COUNT small JSON
    requests per installed backend against fastreq's embedded local server, requests per
    second side by side. The first line says which one runs.

    \b
    Examples:
      fastreq bench
      fastreq bench -- --only 'fastreq-curl*,raw-pycurl'     # options for bench/run.py
      fastreq bench --builtin --count 2000 --backend curl --backend aiohttp
    """
    script = None if builtin else repo_bench_script()
    if script is not None:
        click.echo(f"fastreq bench: running {script} --quick {' '.join(extra)}".rstrip())
        sys.stdout.flush()
        sys.exit(run_repo_bench(script, extra))
    if extra:
        raise click.UsageError(f"unexpected arguments {' '.join(extra)!r} (the built-in "
                               "benchmark takes only the options above)")
    why = "--builtin" if builtin else "no bench/run.py next to the package"
    click.echo(f"fastreq bench: built-in quick benchmark ({why}): {count} requests per backend"
               f" against the embedded server, concurrency {concurrency}")
    sys.exit(builtin_bench(count, concurrency, backend_names, click.echo))


# -- backends ---------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT,
             short_help="List HTTP backends: installed, and what auto picks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
def backends(as_json: bool) -> None:
    """List the HTTP backends, which are installed, and which one `auto` picks.

    `auto` takes the first installed backend in this order (fastest first, measured on
    loopback). Install one with the pip extra shown, e.g. pip install 'fastreq[curl]'.

    \b
    Examples:
      fastreq backends
      fastreq backends --json
    """
    installed = available_backends()
    rows = []
    for name in AUTO_ORDER:
        entry = _REGISTRY[name]
        version = None
        if name in installed:
            try:
                version = metadata.version(entry.library)
            except metadata.PackageNotFoundError:
                version = "?"
        rows.append({"name": name, "installed": name in installed, "library": entry.library,
                     "version": version, "install": f"pip install 'fastreq[{entry.extra}]'"})
    auto = installed[0] if installed else None
    if as_json:
        click.echo(json.dumps({"auto": auto, "backends": rows}, indent=2))
        return
    click.echo(f"{'backend':<10}{'installed':<11}{'library':<10}{'version':<10}install")
    for row in rows:
        click.echo(f"{row['name']:<10}{'yes' if row['installed'] else 'no':<11}"
                   f"{row['library']:<10}{row['version'] or '-':<10}{row['install']}")
    click.echo("")
    if auto is None:
        click.echo("auto -> none installed: pip install 'fastreq[curl]'")
    else:
        click.echo(f"auto -> {auto}")


# -- serve ------------------------------------------------------------------------------
@cli.command(context_settings=_CONTEXT, help=SERVE_HELP,
             short_help="Run the demo's local HTTP server in the foreground.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
def serve(host: str, port: int) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # Before the server is announced (or serves anything): a SIGTERM sent as soon as the
    # banner is read must stop it cleanly, not kill it with the default action.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    server = DemoServer(host, port)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"fastreq demo server on {server.base_url} (Ctrl-C to stop)")
    for route, what in ROUTES.items():
        click.echo(f"  {route:<16}{what}")
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    click.echo("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """The console entry point (``fastreq``, ``python -m fastreq``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="fastreq")
