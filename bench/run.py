#!/usr/bin/env python3
"""fastreq benchmark: one command sets up nginx, runs every client, prints the tables.

    python bench/run.py                 # full run: 20,000 small requests, 3 repetitions
    python bench/run.py --quick         # the same workloads, smaller; well under 2 minutes
    python bench/run.py --only 'fastreq-curl*,raw-pycurl' --repeat 5
    python bench/run.py --list          # client and workload names for --only

Run it with the Python that has fastreq and the peers installed (the project's venv).

What it does: installs nginx and wrk with apt-get when missing, starts its own nginx
(config rendered from ``bench/nginx.conf.template`` into a temp dir, loopback only, stopped
on exit, error or Ctrl-C), pins nginx to one core and each client run to another with
``taskset``, and runs each client in a fresh interpreter (``bench/_clients.py``) so CPU time
and peak RSS are that client's own. Workloads:

1. ``small``: GET a ~100-byte JSON file over HTTP/1.1 keep-alive, concurrency 64, every body
   read and parsed (plus, on this workload only, ``raw-pycurl-same``, ``fastreq-curl-general``
   and ``fastreq-curl-journal``: see bench/README.md);
2. ``large``: 1 MiB downloads at concurrency 16 (MB/s), plus fastreq backends streaming each
   body to a file, to show memory stays flat;
3. ``h2``: HTTPS + HTTP/2 against nginx with a self-signed CA: fastreq's curl backend with
   http2 on and off, and the TCP connections each used (nginx's ``$connection``).

The markdown report (tables, ratios against the targets of issue 4 with PASS/FAIL, date and
machine) is printed and written to ``bench/results/latest.md``. The exit status is non-zero
when any client produced an error (a non-200, a wrong body, an exception, a crash, a
timeout). Never a timed test: only ratios measured side by side in one run mean anything.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _machine import (  # noqa: E402
    Probe,
    busy_cpu_seconds,
    cpu_model,
    fastreq_loop,
    own_cpu_seconds,
    pinning,
    versions,
)
from _nginx import (  # noqa: E402
    LARGE_SIZE,
    SMALL_BODY,
    Nginx,
    SetupError,
    ensure_nginx,
    ensure_wrk,
)
from _report import (  # noqa: E402
    DISTURBED,
    Row,
    Run,
)
from _runner import Entry, Workload, progress, run_in, run_wrk, start_clients  # noqa: E402
from _targets import (  # noqa: E402, F401
    MARK_END,
    MARK_START,
    info_ratios,
    ratios,
    render_report,
    update_readme,
)

RESULTS = HERE / "results" / "latest.md"
README = HERE / "README.md"
#: small-request counts are capped for the slow families (at concurrency 64 httpx spends
#: ~5 ms of CPU per request here, niquests and requests ~1 ms): (quick, full) caps
SLOW_CAPS = {"httpx": (300, 2_000), "niquests": (500, 5_000), "requests": (500, 5_000)}
#: 1 MiB download counts are capped for the same families (~250-550 downloads/s here): (quick,
#: full). The fast clients run 4,000 (quick) / 10,000 downloads, about 1.6 / 4 s each, near
#: wrk's fixed-time run (2 / 5 s), so both measure the steady state: with 100 downloads
#: (~70 ms) the start-up (interpreter warm, 16 connections, first buffers) was most of the
#: time and the ratio to wrk read 0.53x where 2,000 downloads measured 0.98x; and wrk's
#: first second reads 5-7% above its steady state here.
LARGE_SLOW_CAPS = {"httpx": (100, 400), "niquests": (200, 800), "requests": (200, 800)}


def log(msg: str = "") -> None:
    print(msg, flush=True)


SMALL_CLIENTS = [
    ("wrk", "wrk (C, the loopback limit)"),
    ("raw-pycurl", None),
    ("raw-pycurl-same", None),  # the same request bytes and kept headers as fastreq's
    ("fastreq-curl", None),
    ("fastreq-curl-general", None),  # the lane off: what limited/proxied batches take
    ("fastreq-curl-journal", None),  # small workload only: the journal's cost per request
    ("backend-curl", None),
    ("fastreq-aiohttp", None),
    ("backend-aiohttp", None),
    ("fastreq-niquests", None),
    ("fastreq-httpx", None),
    ("fastreq-requests", None),
    ("raw-aiohttp", None),
    ("raw-aiohttp-uvloop", None),
    ("raw-httpx", None),
    ("raw-niquests", None),
    ("raw-requests", None),
]
#: diagnostics of the small workload only (per-request costs)
SMALL_ONLY = frozenset({"raw-pycurl-same", "fastreq-curl-general", "fastreq-curl-journal"})
LARGE_EXTRA = [("fastreq-curl-stream", None), ("fastreq-aiohttp-stream", None)]


def build_workloads(args: argparse.Namespace, server: Nginx | None) -> list[Workload]:
    from _clients import CLIENTS

    def label(client: str, given: str | None) -> str:
        return given or (CLIENTS[client].label if client in CLIENTS else client)

    small_n = args.requests or (5_000 if args.quick else 20_000)

    def capped(client: str, n: int, table: dict[str, tuple[int, int]]) -> int:
        for family, caps in table.items():
            if client.endswith(family) or f"-{family}" in client:
                return min(n, caps[0] if args.quick else caps[1])
        return n

    def small_count(client: str) -> int:
        return capped(client, small_n, SLOW_CAPS)

    large_n = args.large_requests or (4_000 if args.quick else 10_000)

    def large_count(client: str) -> int:
        return capped(client, large_n, LARGE_SLOW_CAPS)
    h2_n = 1_000
    small_url = server.small_url if server else ""
    large_url = server.large_url if server else ""
    body = SMALL_BODY.decode()

    small = Workload(
        "small",
        f"1. Small JSON GET (~{len(SMALL_BODY)} B), HTTP/1.1 keep-alive, concurrency 64, "
        "body read and parsed",
        [
            Entry(
                f"small/{c}", c, label(c, given).replace("thread pool", "64-thread pool"),
                small_count(c),
                {"kind": "json", "url": small_url, "conc": 64, "expect_body": body},
            )
            for c, given in SMALL_CLIENTS
        ],
    )
    large = Workload(
        "large",
        "2. 1 MiB downloads, HTTP/1.1 keep-alive, concurrency 16, body read whole "
        "(stream rows: written to files chunk by chunk)",
        [
            Entry(
                f"large/{c}", c, label(c, given).replace("thread pool", "16-thread pool"),
                large_count(c),
                {"kind": "stream" if c.endswith("-stream") else "bytes", "url": large_url,
                 "conc": 16, "expect_len": LARGE_SIZE, "expect_body": body,
                 "warmup_url": small_url},
            )
            for c, given in SMALL_CLIENTS + LARGE_EXTRA if c not in SMALL_ONLY
        ],
        mbps=True,
        growth=True,
    )
    tls = {"kind": "json", "conc": 64, "expect_body": body}
    if server:
        tls.update(url=server.tls_url, ca=str(server.ca), conn_log=str(server.tls_log))
    h2 = Workload(
        "h2",
        f"3. HTTPS (self-signed CA, verified) to one host, {h2_n:,} small JSON GETs, "
        "concurrency 64",
        [
            Entry("h2/fastreq-curl-h2", "fastreq-curl", "fastreq (curl), http2 on", h2_n,
                  {**tls, "http2": True}),
            Entry("h2/fastreq-curl-h1", "fastreq-curl", "fastreq (curl), http2 off", h2_n,
                  {**tls, "http2": False}),
            Entry("h2/raw-pycurl-h2", "raw-pycurl", "raw pycurl select loop, http2 on", h2_n,
                  {**tls, "http2": True}),
            Entry("h2/raw-pycurl-h1", "raw-pycurl", "raw pycurl select loop, http2 off", h2_n,
                  {**tls, "http2": False}),
        ],
        connections=True,
    )
    workloads = [small, large, h2]
    for e in (e for w in workloads for e in w.entries):
        e.spec["discard"] = bool(getattr(args, "raw_discards", False))
    if args.only:
        patterns = [p.strip() for p in args.only.split(",") if p.strip()]

        def wanted(e: Entry) -> bool:
            names = (e.id, e.id.split("/", 1)[1], e.id.split("/", 1)[0], e.client)
            return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

        for w in workloads:
            w.entries = [e for e in w.entries if wanted(e)]
        workloads = [w for w in workloads if w.entries]
    return workloads


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so every finally runs: nginx is stopped, children killed


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="fastreq benchmark against nginx on 127.0.0.1 (see the module docstring)")
    ap.add_argument("--quick", action="store_true",
                    help="5,000 small requests (fewer for httpx, niquests, requests), 4,000 large;"
                         " well under 2 minutes")
    ap.add_argument("--requests", type=int, help="small-request count (default 20,000)")
    ap.add_argument("--large-requests", type=int,
                    help="1 MiB download count (default 10,000; fewer for httpx, niquests, "
                         "requests)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per client (default 3)")
    ap.add_argument("--raw-discards", action="store_true",
                    help="the raw peers drop each parsed result instead of keeping them all "
                         "to the end of the run as fastreq returns them (the older method)")
    ap.add_argument("--only", help="comma-separated glob patterns of client or workload names "
                    "(e.g. 'fastreq-curl*,raw-pycurl' or 'small/*'); see --list")
    ap.add_argument("--run-timeout", type=float, default=60.0,
                    help="cap on one client run, seconds (default 60)")
    ap.add_argument("--time-limit", type=float,
                    help="cap on the whole benchmark, seconds (default 110 quick, 1800 full);"
                         " runs past it are skipped and reported")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset")
    ap.add_argument("--output", type=Path, default=RESULTS,
                    help=f"where to write the report (default {RESULTS.relative_to(HERE.parent)})")
    ap.add_argument("--update-readme", action="store_true",
                    help="also put the report into bench/README.md (between its markers)")
    ap.add_argument("--list", action="store_true", help="list workload/client names and exit")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.time_limit is None:
        args.time_limit = 110.0 if args.quick else 1800.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for w in build_workloads(args, None):
            log(w.key)
            for e in w.entries:
                log(f"  {e.id:<34} {e.label}")
        return 0

    started = time.monotonic()
    deadline = started + args.time_limit
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        import fastreq  # noqa: F401
    except ImportError:
        log(f"fastreq is not importable by {sys.executable}: run this with the project's "
            "venv (e.g. /work/venv/bin/python bench/run.py, or activate it first)")
        return 2
    try:
        nginx = ensure_nginx(log) if not args.no_install else shutil.which("nginx")
        if not nginx:
            raise SetupError("nginx is not installed (and --no-install was given)")
        wrk = ensure_wrk(log) if not args.no_install else shutil.which("wrk")
    except SetupError as exc:
        log(f"error: {exc}")
        return 2

    server_pin, client_pin, pin_text = ([], [], "not pinned (--no-pin)") if args.no_pin \
        else pinning()
    if not client_pin:
        log(f"note: {pin_text}; continuing without pinning")
    loop = fastreq_loop()
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    rows: dict[str, Row] = {}
    skipped = 0
    try:
        with Nginx(nginx, server_pin) as server:
            workloads = build_workloads(args, server)
            for w in workloads:
                for e in w.entries:
                    rows[e.id] = Row(e.id, e.label)
            nginx_v = ".".join(map(str, server.version))
            log(f"nginx {nginx_v} on 127.0.0.1:{server.http_port} (HTTP/1.1) and "
                f":{server.tls_port} (TLS, HTTP/2); {pin_text}; fastreq loop: {loop}; "
                f"{args.repeat} repetitions")
            for w in workloads:
                log(f"\n{w.title}")
                children = start_clients(w.entries, client_pin, deadline, args.run_timeout,
                                         log)
                try:
                    for rep in range(args.repeat):
                        for e in w.entries:
                            server.check_alive()
                            left = deadline - time.monotonic()
                            if left < 1:
                                run = Run.skipped(e.n, "global time limit reached")
                                skipped += 1
                            elif e.client == "wrk":
                                probe = Probe(server.pid)
                                run = run_wrk(e, client_pin, min(args.run_timeout, left), wrk,
                                              args.quick)
                                run.others = probe.others(run.cpu if run.cpu == run.cpu else 0)
                            else:
                                child = children[e.id]
                                probe = Probe(server.pid, child.proc.pid)
                                run = run_in(child, min(args.run_timeout, left))
                                run.others = probe.others()
                            rows[e.id].runs.append(run)
                            if run.note != "skipped":
                                progress(rep, args.repeat, e, run, w.mbps)
                finally:
                    for child in children.values():
                        child.close()
    except KeyboardInterrupt:
        log("\ninterrupted: nginx stopped")
        return 130
    except SetupError as exc:
        log(f"error: {exc}")
        return 2

    busy1, own1, wall1 = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()
    noise = ""
    if busy0 is not None and busy1 is not None and wall1 > wall0:
        foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)
        noise = (f"- other processes on this machine used {foreign:.0%} of one core on average "
                 "during the run" + (" — **numbers are disturbed; rerun on a quiet machine**"
                                     if foreign > 0.10 else " (quiet enough)"))
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python bench/run.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                   if (argv if argv is not None else sys.argv[1:]) else "")
    header = [
        f"- date: {when}; command: `{cmd.strip()}`",
        f"- machine: `{platform.machine()}`, {cpu_model()}, {os.cpu_count()} CPUs; "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable}); nginx {nginx_v}; "
        f"wrk {'yes' if wrk else 'missing'}",
        f"- {versions()}",
        f"- {pin_text}; each client in its own interpreter per workload (imports and a short "
        f"untimed warm-up once, then {args.repeat} timed runs, interleaved with the other "
        "clients'); each timed run starts a fresh session/client, so connection set-up counts",
        f"- fastreq runs on **{loop}** (`fastreq._sync.new_event_loop()`); raw httpx and raw "
        f"niquests on the same loop, so their ratios measure fastreq's own cost",
        "- CPU µs/req: user+system CPU of the client process in the timed section "
        "(getrusage, all threads) / requests; peak RSS: the client process's VmHWM; "
        "RSS growth: peak minus RSS at the start of the timed section (VmHWM reset first)",
        ("- the raw peers parse each body and **drop** the result (`--raw-discards`)"
         if args.raw_discards else
         "- every client keeps what it parsed to the end of the run, as fastreq returns it (the "
         "parsed JSON; a 1 MiB body's length): the raw peers too (`--raw-discards`: they drop it)"),
        "- small-request counts are capped for httpx, niquests and requests (see the requests "
        "column); ratios compare medians of req/s (MB/s); the `by CPU µs/req` column is the same "
        "comparison by CPU per request, steadier when other processes share the machine",
        *([noise] if noise else []),
        f"- a run is *disturbed* when other processes used more than {DISTURBED:.0%} of a core "
        "during it (counted in the notes column)",
    ]
    footer = [
        f"Total time {time.monotonic() - started:.0f} s."
        + (f" {skipped} runs skipped: global time limit." if skipped else ""),
    ]
    report = render_report(workloads, rows, header, footer)
    log("\n" + report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"written to {args.output}")
    if args.update_readme:
        log(update_readme(README, report))
    bad = [r.label for r in rows.values() if r.errors]
    if bad:
        log(f"errors in: {', '.join(bad)}")
        return 1
    if skipped:
        log(f"incomplete: {skipped} runs skipped (time limit {args.time_limit:.0f} s)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
