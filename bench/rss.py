#!/usr/bin/env python3
"""Peak RSS of ``fastreq_iter(from_file(path))`` at 100,000 and 1,000,000 URLs: flat in N?

    python bench/rss.py                       # 100k and 1M with nginx (100k only without)
    python bench/rss.py --n 100000 --n 1000000 --concurrency 100 --backend curl
    python bench/rss.py --server demo --n 20000
    python bench/rss.py --journal --n 100000 --n 300000   # every outcome also journaled

For each N: writes N URLs to a file, then runs a fresh interpreter (so each figure is that
run's own) which reads the file lazily through ``from_file``, fetches every URL with
``fastreq_iter`` and writes one JSON line per result to a JSONL file as it arrives (the body
parsed, as a user would). It reports peak RSS (``VmHWM`` from ``/proc/self/status``) after
the imports and at the end, the throughput and the error count; then whether the peak is flat
in N (the 1M peak within 10% or 15 MB of the smallest N's). The server is our own nginx
(``bench/_nginx.py``, a ~100-byte JSON file) when nginx is installed, else fastreq's embedded
demo server (``fastreq serve`` in a child process, ``/item/{n}``), which is much slower: pass
``--n`` to keep the run short. ``--journal``: each run also records every outcome in a new
SQLite journal (``journal=``, in the temporary directory). Linux only (``/proc``). Exit
status 1 on any failed request.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def proc_status(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``), in bytes."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# -- the measured run (a child process) --------------------------------------------------
def child(args: argparse.Namespace) -> int:
    from fastreq import fastreq_iter, from_file

    hwm_start = proc_status("VmHWM")
    samples: list[tuple[int, int]] = []
    step = max(1, args.n // 10)
    errors = 0
    count = 0
    started = time.perf_counter()
    with open(args.out, "w", encoding="utf-8") as out:
        for r in fastreq_iter(from_file(args.file), concurrency=args.concurrency,
                              backend=args.backend, max_retries=1, journal=args.journal_path):
            out.write(json.dumps({"index": r.index, "status": r.status, "ok": r.ok,
                                  "attempts": r.attempts, "body": r.value}) + "\n")
            count += 1
            if not r.ok:
                errors += 1
            if count % step == 0:
                samples.append((count, proc_status("VmRSS")))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "n": args.n, "results": count, "errors": errors, "seconds": seconds,
        "hwm_start": hwm_start, "hwm_end": proc_status("VmHWM"), "rss_samples": samples,
    }))
    return 0


# -- the driver ---------------------------------------------------------------------------
def write_urls(path: Path, base: str, n: int, pattern: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        for start in range(0, n, 10_000):
            fh.write("".join(pattern.format(base=base, i=i) + "\n"
                             for i in range(start, min(n, start + 10_000))))


def measure(n: int, base: str, pattern: str, args: argparse.Namespace, tmp: Path
            ) -> dict[str, Any]:
    urls, out = tmp / f"urls-{n}.txt", tmp / f"results-{n}.jsonl"
    write_urls(urls, base, n, pattern)
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--file", str(urls),
           "--out", str(out), "--concurrency", str(args.concurrency), "--backend", args.backend]
    if args.journal:
        cmd += ["--journal-path", str(tmp / f"journal-{n}.db")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the run with N={n} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    with open(out, "rb") as fh:
        result["lines"] = sum(1 for _ in fh)
    urls.unlink()
    out.unlink()
    for suffix in ("", "-wal", "-shm"):
        (tmp / f"journal-{n}.db{suffix}").unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append",
                    help="URL count (repeat for more; default 100000 and 1000000 with nginx, "
                         "100000 with the demo server)")
    ap.add_argument("--server", choices=("auto", "nginx", "demo"), default="auto")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--journal", action="store_true",
                    help="also record every outcome in a new SQLite journal (journal=...)")
    ap.add_argument("--journal-path", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.n = args.n[0]
        return child(args)

    from _nginx import Nginx, find_nginx

    nginx = find_nginx() if args.server in ("auto", "nginx") else None
    if args.server == "nginx" and nginx is None:
        raise SystemExit("nginx is not installed (apt-get install nginx, or --server demo)")
    sizes = args.n or ([100_000, 1_000_000] if nginx else [100_000])
    with tempfile.TemporaryDirectory(prefix="fastreq-rss-") as tmpdir:
        tmp = Path(tmpdir)
        if nginx:
            server: Any = Nginx(nginx, []).__enter__()
            base, pattern, what = server.small_url, "{base}?i={i}", f"nginx ({nginx})"
        else:
            server = subprocess.Popen(
                [sys.executable, "-m", "fastreq", "serve", "--port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert server.stdout is not None
            base = server.stdout.readline().split()[4]
            pattern, what = "{base}/item/{i}", "fastreq's embedded demo server"
        print(f"server: {what}; fastreq_iter(from_file(...)), concurrency {args.concurrency},"
              f" backend {args.backend}; results written to a JSONL file as they arrive"
              + ("; every outcome journaled (journal=...)" if args.journal else ""))
        rows = []
        try:
            for n in sizes:
                row = measure(n, base, pattern, args, tmp)
                rows.append(row)
                mb = 1024 * 1024
                print(f"N={n:>9,}: peak RSS {row['hwm_end'] / mb:6.1f} MB "
                      f"(after imports {row['hwm_start'] / mb:5.1f} MB), "
                      f"{row['seconds']:7.1f} s, {n / row['seconds']:7,.0f} req/s, "
                      f"{row['errors']} errors, {row['lines']:,} lines written", flush=True)
        finally:
            if nginx:
                server.__exit__(None, None, None)
            else:
                server.terminate()
                server.wait(10)
    peaks = [row["hwm_end"] for row in rows]
    if len(rows) > 1:
        growth = peaks[-1] - peaks[0]
        flat = growth <= max(0.10 * peaks[0], 15 * 1024 * 1024)
        print(f"growth from N={sizes[0]:,} to N={sizes[-1]:,}: {growth / 1024 / 1024:+.1f} MB"
              f" -> {'FLAT' if flat else 'NOT flat'}")
    print(f"under 150 MB: {'yes' if max(peaks) < 150 * 1024 * 1024 else 'NO'}")
    return 1 if any(row["errors"] or row["lines"] != row["n"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
