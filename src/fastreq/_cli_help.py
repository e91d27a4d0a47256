"""Long help texts of the ``fastreq`` commands (kept apart from the command code)."""

from __future__ import annotations

from fastreq._demo_server import ROUTES

__all__ = ["FETCH_HELP", "SERVE_HELP"]

FETCH_HELP = """Fetch the URLs in FILE (or stdin) and write one JSON line per URL as it completes.

\b
Input: one URL per line (blank lines and # comments skipped), or JSONL request objects
({"url", "method", "params", "data", "json", "headers", "key"}; a line starting with { is
one). The input is read lazily and results are written as they arrive, so memory stays flat
for millions of URLs. A bad line fails that input only (its error names the line).

\b
Output, in completion order (sort by index for input order):
  {"index", "url", "status", "elapsed", "attempts", "error", "body", "replayed"}
index is the input's position (0-based, counting URLs only); body is the parsed JSON for
JSON responses, else the text (with --download-dir: "path", the file the body went to);
a 404 is a result (status 404, error null); error is set when the request failed
(connection refused, timeout, retries exhausted on 429/5xx; status is then the last
response's, if any); attempts counts every send; elapsed is seconds from the input's start
(limiter waits and retries included); replayed is true for an outcome read from --journal.

\b
Resumable jobs: with --journal job.db each outcome is recorded in SQLite as it completes.
Re-run the same command after a crash (even kill -9): inputs already done are not fetched
again but their stored outcomes are written again, so the new output holds every input
exactly once. --retry-failed also fetches the journal's failures again.

\b
On a terminal a progress bar (done, rate, errors, ETA) goes to stderr, then a summary:
counts per status and per error kind, req/s, retries (attempts beyond the first). Exit
status 1 when any input failed (the count is on stderr), 2 on bad usage or bad options
(nothing is fetched then), 130 when interrupted.

\b
Examples:
  fastreq fetch urls.txt -o results.jsonl
  seq 1 100 | sed 's|^|https://api.example.com/items/|' | fastreq fetch -c 50 -
  fastreq fetch urls.txt --rate-limit 10 --burst 1 --retries 5 --timeout 10
  fastreq fetch urls.txt -c 500 --per-host-concurrency 8 --per-host-rate-limit 20
  fastreq fetch big.txt -o out.jsonl --journal job.db      # re-run the same after a crash
  fastreq fetch big.txt -o out.jsonl --journal job.db --retry-failed
  fastreq fetch urls.txt --download-dir pages/ -o index.jsonl   # bodies to files
  fastreq fetch urls.txt --proxies-file proxies.txt
  fastreq fetch urls.txt -H 'Authorization: Bearer TOKEN' -H 'Accept: application/json'
  fastreq fetch urls.txt --json '{"query": "x"}'          # POST a JSON body
  fastreq fetch urls.txt -X PUT --data 'hello' --no-redirects --insecure
  fastreq fetch urls.txt --no-body | jq -r 'select(.error) | .url'   # failed URLs
"""


SERVE_HELP = "\n".join([
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

