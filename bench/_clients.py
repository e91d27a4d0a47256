"""Benchmark clients, each in its own interpreter so its CPU time and RSS are its own.

``run.py`` starts ``python bench/_clients.py --serve`` once per client and workload and sends
it one JSON line per command (``warm``, then ``run`` per repetition); each reply is one JSON
line: the timed section's wall time, CPU (``resource.getrusage`` user+system of this process,
every thread), peak RSS and its growth, errors and bytes received. One-shot, for trying a
client by hand::

    python bench/_clients.py '{"client": "raw-aiohttp", "kind": "json", "n": 5000, "conc": 64,
                               "url": "http://127.0.0.1:8080/small.json", "expect_body": "{}"}'

Every client does the same work: ``n`` GETs of ``url`` at concurrency ``conc`` and, per
``kind``: ``json`` reads and parses each body (orjson when installed, as fastreq does);
``bytes`` reads each body whole and checks its length; ``stream`` writes each body to a file
chunk by chunk and checks the file's size. A response is an error unless it is a 200 with the
expected body. The untimed warm-up covers imports and lazy set-up; every timed run starts
from a fresh session or client, so connection set-up is inside every client's timing alike.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _peers import raw_aiohttp, raw_httpx, raw_niquests, raw_pycurl, raw_requests_threads
from _work import (
    BadResponse,
    Outcome,
    Spec,
    check,
    keeper,
    loads,
    loop_name,
    make_outcome,
    run_async,
    workers,
)


# -- fastreq ----------------------------------------------------------------------------------
def _fastreq_backend(spec: Spec, backend: str) -> Any:
    if spec.get("ca"):  # the TLS workload: verify against the benchmark's own CA
        if backend != "curl":
            raise SystemExit("TLS workload: only the curl backend takes a CA bundle here")
        from fastreq.backends.curl import CurlBackend

        return CurlBackend(http2_enabled=bool(spec.get("http2")), ca_bundle=spec["ca"])
    return backend


def fastreq_general(spec: Spec) -> Outcome:
    """``fastreq_pipeline`` on the curl backend with the fast lane switched off: the general
    path (a coroutine per request), which rate-limited, per-host-limited or proxied batches
    take."""
    from fastreq import _curl_lane

    _curl_lane.enabled = False
    try:
        return fastreq_pipeline(spec, "curl")
    finally:
        _curl_lane.enabled = True


def fastreq_pipeline(spec: Spec, backend: str, journal: bool = False) -> Outcome:
    """The whole pipeline: ``fastreq_async(urls, backend=..., concurrency=...)``, defaults on
    (retries armed, ordering, result parsing); JSON parsed by fastreq, bytes measured by a
    ``parse_func`` so no body outlives its slot. ``journal``: every outcome also recorded in
    a new SQLite journal (``journal=`` in a fresh temporary directory, so nothing replays)."""
    if journal:
        with tempfile.TemporaryDirectory(prefix="fastreq-bench-") as tmp:
            return fastreq_pipeline({**spec, "journal_path": f"{tmp}/job.db"}, backend)

    async def main() -> Outcome:
        import fastreq

        expected = loads(spec["expect_body"].encode()) if spec["kind"] == "json" else None
        options: dict[str, Any] = {
            "backend": _fastreq_backend(spec, backend),
            "concurrency": spec["conc"],
            "http2": bool(spec.get("http2", True)),
        }
        if spec["kind"] == "bytes":
            options.update(return_type="content", parse_func=len)
        if spec.get("journal_path"):
            options["journal"] = spec["journal_path"]
        urls = [spec["url"]] * spec["n"]
        errors = 0
        first = ""
        try:
            results = await fastreq.fastreq_async(urls, **options)
        except fastreq.PartialFailureError as exc:
            results = exc.results
            errors = len(exc.failures)
            f = exc.failures[0]
            first = f"{type(f.error).__name__}: {f.error}"[:300]
        if len(results) != spec["n"]:
            return make_outcome(spec["n"], f"{len(results)} results for {spec['n']} URLs", 0,
                                loop_name())
        nbytes = 0
        want = expected if spec["kind"] == "json" else spec["expect_len"]
        for r in results:
            if r is None:
                continue  # a failure already counted
            if r != want:
                errors += 1
                first = first or f"unexpected result {str(r)[:100]!r}"
            else:
                nbytes += r if isinstance(r, int) else len(spec["expect_body"])
        return make_outcome(errors, first, nbytes, loop_name())

    return run_async(main, "fastreq")


def fastreq_stream(spec: Spec, backend: str) -> Outcome:
    """A fastreq backend used directly, ``RequestConfig(stream=True, on_chunk=file.write)``:
    each body goes to its own file and never sits whole in memory (fastreq's public
    ``fastreq()`` has no streaming option yet)."""

    async def main() -> Outcome:
        from fastreq.backends import create_backend
        from fastreq.backends.base import RequestConfig

        be = create_backend(backend)
        tmp = Path(spec.get("tmpdir") or tempfile.gettempdir())
        counter = 0

        async def one() -> int:
            nonlocal counter
            counter += 1
            path = tmp / f"stream-{os.getpid()}-{counter}.bin"
            try:
                with open(path, "wb") as f:  # noqa: ASYNC230 - a local file, like the callback
                    r = await be.request(RequestConfig(
                        spec["url"], stream=True, on_chunk=f.write, timeout=30))
                    size = f.tell()
                if r.status_code != 200 or size != spec["expect_len"]:
                    raise BadResponse(f"HTTP {r.status_code}, {size} bytes written")
                return size
            finally:
                path.unlink(missing_ok=True)

        try:
            return await workers(spec["n"], spec["conc"], one)
        finally:
            await be.close()

    return run_async(main, "fastreq")


def backend_alone(spec: Spec, backend: str) -> Outcome:
    """A fastreq backend driven directly by ``conc`` worker coroutines, no pipeline: the
    engine's own cost, to tell it apart from the pipeline's (diagnostic row)."""

    async def main() -> Outcome:
        from fastreq.backends import create_backend
        from fastreq.backends.base import RequestConfig

        be = create_backend(backend)
        keep = keeper(spec)  # as the raw peers: every result kept to the end

        async def one() -> int:
            r = await be.request(RequestConfig(spec["url"], timeout=30))
            if spec["kind"] == "json":
                value = r.json()
                if r.status_code != 200 or not value:
                    raise BadResponse(f"HTTP {r.status_code}")
                keep(value)
                return len(r.content)
            return check(spec, r.status_code, r.content, keep)

        try:
            return await workers(spec["n"], spec["conc"], one)
        finally:
            await be.close()

    return run_async(main, "fastreq")


@dataclass(frozen=True)
class Client:
    label: str
    fn: Callable[[Spec], Outcome]


BACKENDS = ("curl", "aiohttp", "niquests", "httpx", "requests")

CLIENTS: dict[str, Client] = {
    **{
        f"fastreq-{b}": Client(f"fastreq ({b})", partial(fastreq_pipeline, backend=b))
        for b in BACKENDS
    },
    "fastreq-curl-general": Client("fastreq (curl), general path: lane off (diagnostic)",
                                   fastreq_general),
    "fastreq-curl-journal": Client("fastreq (curl) with journal",
                                   partial(fastreq_pipeline, backend="curl", journal=True)),
    **{
        f"fastreq-{b}-stream": Client(
            f"fastreq {b} backend, stream → files", partial(fastreq_stream, backend=b))
        for b in ("curl", "aiohttp")
    },
    "backend-curl": Client("curl backend alone, no pipeline (diagnostic)",
                           partial(backend_alone, backend="curl")),
    "backend-aiohttp": Client("aiohttp backend alone, no pipeline (diagnostic)",
                              partial(backend_alone, backend="aiohttp")),
    "raw-pycurl": Client("raw pycurl CurlMulti select loop", raw_pycurl),
    "raw-pycurl-same": Client("raw pycurl select loop, fastreq's request (UA, Accept-Encoding, "
                              "headers kept)", partial(raw_pycurl, same_request=True)),
    "raw-aiohttp": Client("raw aiohttp", raw_aiohttp),
    "raw-aiohttp-uvloop": Client("raw aiohttp + uvloop", partial(raw_aiohttp, loop="uvloop")),
    "raw-httpx": Client("raw httpx AsyncClient", raw_httpx),
    "raw-niquests": Client("raw niquests AsyncSession", raw_niquests),
    "raw-requests": Client("requests, thread pool", raw_requests_threads),
}


def _proc_status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_lifetime_peak_kb = 0  # VmHWM before each reset, so the process's true peak is kept


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def warm_up(spec: Spec) -> None:
    """Imports and lazy set-up, untimed: a few requests on the small URL (so no large buffer
    lingers from it), at most 16 so slow clients warm up quickly."""
    warm = spec.get("warmup", min(spec["n"], 16))
    if not warm:
        return
    small: Spec = {"url": spec["warmup_url"], "kind": "json"} if spec.get("warmup_url") else {}
    if small and spec["kind"] == "stream":
        small["kind"] = "stream"
    CLIENTS[spec["client"]].fn({**spec, **small, "n": warm, "expect_len": len(spec["expect_body"])})


def timed(spec: Spec) -> dict[str, Any]:
    """One timed run of ``spec['client']``: the numbers for the parent."""
    fn = CLIENTS[spec["client"]].fn
    gc.collect()
    log = Path(spec["conn_log"]) if spec.get("conn_log") else None
    offset = log.stat().st_size if log is not None and log.exists() else 0
    # RSS growth in the timed section: VmHWM reset to the current RSS first, so an earlier
    # peak does not hide it (else: ru_maxrss before/after, which an earlier peak may mask)
    global _lifetime_peak_kb
    _lifetime_peak_kb = max(_lifetime_peak_kb, _proc_status_kb("VmHWM"))
    hwm_reset = _reset_peak_rss()
    rss_start = _proc_status_kb("VmRSS") if hwm_reset else 0
    base = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = fn(spec)
    wall = time.perf_counter() - t0
    end = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _proc_status_kb("VmHWM") if hwm_reset else 0
    result: dict[str, Any] = {
        **out,
        "requests": spec["n"],
        "wall": wall,
        "cpu": (end.ru_utime - base.ru_utime) + (end.ru_stime - base.ru_stime),
        # VmHWM, not ru_maxrss: ru_maxrss also counts the parent's memory when it spawned us
        "rss_peak_kb": max(_lifetime_peak_kb, hwm) or end.ru_maxrss,
        "rss_growth_kb": (hwm - rss_start) if hwm and rss_start
        else end.ru_maxrss - base.ru_maxrss,
    }
    if log is not None:
        from _report import count_connections

        time.sleep(0.1)  # nginx logs a request right after sending it: let the last lines land
        with open(log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        result["connections"], result["protocols"] = count_connections(lines)
        if len(lines) != spec["n"]:
            result["note"] = f"server logged {len(lines)} requests"
    return result


def measure(spec: Spec) -> dict[str, Any]:
    """Warm up, then one timed run (a one-shot process, or a test)."""
    warm_up(spec)
    return timed(spec)


def serve() -> int:
    """Answer commands from stdin, one JSON line each: ``{"cmd": "warm", ...spec}`` (reply
    ``{"ready": true}``), ``{"cmd": "run", ...spec}`` (reply: :func:`timed`'s numbers),
    ``{"cmd": "quit"}``. One process per client and workload, so imports and warm-up are
    paid once, not once per repetition; CPU and RSS stay this client's own."""
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        cmd = spec.pop("cmd", "run")
        if cmd == "quit":
            break
        try:
            if cmd == "warm":
                warm_up(spec)
                reply: dict[str, Any] = {"ready": True}
            else:
                reply = timed(spec)
        except Exception as exc:
            traceback.print_exc()
            reply = {"crash": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(reply), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--serve"]:
        return serve()
    spec = json.loads(argv[1])
    print(json.dumps(measure(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
