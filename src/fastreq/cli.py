"""The ``fastreq`` command: ``demo``, ``fetch``, ``backends`` and ``serve``.

Run ``fastreq --help`` (or ``python -m fastreq --help``) for the commands and examples.

Exit status: 0 success; 1 some inputs failed (or the demo saw something unexpected);
2 bad usage or invalid input (a one-line message, no traceback).
"""

from __future__ import annotations

import io
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
from fastreq._cli_demo import run_demo
from fastreq._cli_fetch import parse_header, read_urls, run_batch, write_jsonl
from fastreq._demo_server import ROUTES, DemoServer
from fastreq.backends import _REGISTRY, AUTO_ORDER, available_backends
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
      fastreq fetch urls.txt -o results.jsonl   # one JSON line per URL, in order
      cat urls.txt | fastreq fetch --concurrency 100 --rate-limit 50 > out.jsonl
      fastreq backends                          # which HTTP libraries can be used

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
@cli.command(context_settings=_CONTEXT,
             short_help="Fetch URLs from a file or stdin; write JSON lines.")
@click.argument("source", metavar="[FILE|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", default="-", show_default=True, metavar="OUT",
              type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write the JSON lines ('-': stdout).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=20, show_default=True,
              help="Requests in flight at once.")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Extra attempts on connection errors, timeouts, 429 and 5xx.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="Time limit per request; 0: none.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="N", help="At most N requests per second (default: no limit).")
@click.option("--burst", type=click.IntRange(min=1), default=5, show_default=True,
              help="Requests allowed at once above the rate limit.")
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
@click.option("--no-redirects", is_flag=True, help="Return 3xx responses as they are.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--no-body", is_flag=True, help="Write \"body\": null (statuses only).")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def fetch(source: str, output: str, concurrency: int, retries: int, timeout: float,
          rate_limit: float | None, burst: int, backend: str, method: str | None,
          headers: tuple[str, ...], data: str | None, json_body: str | None,
          proxy: str | None, no_redirects: bool, insecure: bool, no_body: bool,
          quiet: bool) -> None:
    """Fetch URLs listed one per line in FILE (or stdin) and write one JSON line per URL.

    Blank lines and lines starting with # are skipped. Each output line, in input order, is
    {"index", "url", "status", "elapsed", "attempts", "error", "body"}: body is the parsed
    JSON for JSON responses, else the text; a 404 is a result (status 404, error null);
    error is set when the request failed (connection refused, timeout, retries exhausted on
    429/5xx; status then holds the last response's status, if any). attempts is given for
    failed inputs only (null otherwise). elapsed is seconds, null when the backend does not
    report it.

    A summary goes to stderr. Exit status 1 when any URL failed (the count is on stderr),
    2 on bad usage or an invalid URL (nothing is fetched then).

    \b
    Examples:
      fastreq fetch urls.txt -o results.jsonl
      seq 1 100 | sed 's|^|https://api.example.com/items/|' | fastreq fetch -c 50 -
      fastreq fetch urls.txt --rate-limit 10 --burst 1 --retries 5 --timeout 10
      fastreq fetch urls.txt -H 'Authorization: Bearer TOKEN' -H 'Accept: application/json'
      fastreq fetch urls.txt --json '{"query": "x"}'          # POST a JSON body
      fastreq fetch urls.txt -X PUT --data 'hello' --no-redirects --insecure
      fastreq fetch urls.txt --no-body | jq -r 'select(.error) | .url'   # failed URLs
    """
    if data is not None and json_body is not None:
        raise click.UsageError("give either --data or --json, not both")
    body_json: Any = None
    if json_body is not None:
        try:
            body_json = json.loads(json_body)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="'--json'") from None
    header_map = dict(parse_header(h) for h in headers) or None
    urls = _read_source(source)

    client_options: dict[str, Any] = {
        "backend": backend, "concurrency": concurrency, "max_retries": retries,
        "rate_limit": rate_limit, "rate_limit_burst": burst,
        "timeout": timeout or None, "headers": header_map,
        "follow_redirects": not no_redirects, "verify_ssl": not insecure,
    }
    has_body = data is not None or json_body is not None
    request_options: dict[str, Any] = {
        "method": method or ("POST" if has_body else "GET"),
        "data": data, "json": body_json, "proxy": proxy,
    }
    out = _open_output(output)
    try:
        outcome = run_batch(urls, client_options, request_options)
        write_jsonl(out, outcome, urls, body=not no_body)
        out.flush()
    except BrokenPipeError:  # `fastreq fetch ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if out is not _stdout():
            out.close()
    tally = outcome.tally()
    if not quiet:
        rate = len(urls) / outcome.seconds if outcome.seconds > 0 else 0.0
        click.echo(
            f"fastreq: {tally.total} URLs in {outcome.seconds:.2f} s ({rate:,.0f}/s) with "
            f"{outcome.backend}: {tally.succeeded} ok, {tally.failed} failed; "
            f"statuses {tally.status_text()}"
            + (f"; errors {tally.error_text()}" if tally.failed else ""),
            err=True,
        )
    if tally.failed:
        click.echo(f"fastreq: error: {tally.failed} of {tally.total} URLs failed", err=True)
        sys.exit(1)


def _read_source(source: str) -> list[str]:
    if source == "-":
        if sys.stdin.isatty():
            raise click.UsageError("no URLs: give a FILE, or pipe URLs on stdin")
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        try:
            return read_urls(stdin, "stdin")
        finally:
            stdin.detach()
    try:
        with open(source, encoding="utf-8", errors="replace") as lines:
            return read_urls(lines, source)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source!r}: {exc.strerror}",
                                 param_hint="'FILE'") from None


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
_SERVE_HELP = "\n".join([
    "Run the demo's HTTP server in the foreground, to try `fastreq fetch` against it.",
    "",
    "It listens on HOST:PORT until Ctrl-C or SIGTERM; no internet needed.",
    "",
    "\b",
    "Routes:",
    *(f"  {route:<16}{what}" for route, what in ROUTES.items()),
    "",
    "\b",
    "Example:",
    "  fastreq serve --port 8000 &",
    "  seq 1 1000 | sed 's|^|http://127.0.0.1:8000/item/|' | fastreq fetch -c 50 > out.jsonl",
])


@cli.command(context_settings=_CONTEXT, help=_SERVE_HELP,
             short_help="Run the demo's local HTTP server in the foreground.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
def serve(host: str, port: int) -> None:
    server = DemoServer(host, port)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"fastreq demo server on {server.base_url} (Ctrl-C to stop)")
    for route, what in ROUTES.items():
        click.echo(f"  {route:<16}{what}")
    sys.stdout.flush()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    click.echo("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """The console entry point (``fastreq``, ``python -m fastreq``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="fastreq")
