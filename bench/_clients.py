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

import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    loads = json.loads

Spec = dict[str, Any]
Outcome = dict[str, Any]  # errors, first_error, nbytes, loop


class BadResponse(Exception):
    pass


def check(spec: Spec, status: int, body: bytes) -> int:
    """The body's size if the response is what every client must get, else BadResponse."""
    if status != 200:
        raise BadResponse(f"HTTP {status}")
    if spec["kind"] == "json":
        if not loads(body):
            raise BadResponse("empty JSON")
    elif len(body) != spec["expect_len"]:
        raise BadResponse(f"{len(body)} bytes, expected {spec['expect_len']}")
    return len(body)


def _outcome(errors: int, first: str, nbytes: int, loop: str) -> Outcome:
    return {"errors": errors, "first_error": first, "nbytes": nbytes, "loop": loop}


def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def _workers(n: int, conc: int, one: Callable[[], Awaitable[int]]) -> Outcome:
    """``n`` calls of ``one()`` by ``conc`` workers; counts errors and bytes."""
    remaining = n
    errors = nbytes = 0
    first = ""

    async def worker() -> None:
        nonlocal remaining, errors, nbytes, first
        while remaining > 0:
            remaining -= 1
            try:
                size = await one()  # not `nbytes += await ...`: that loses updates
                nbytes += size
            except Exception as exc:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:300]

    await asyncio.gather(*(worker() for _ in range(min(conc, n))))
    return _outcome(errors, first, nbytes, _loop_name())


def _run_async(factory: Callable[[], Awaitable[Outcome]], loop: str) -> Outcome:
    if loop == "uvloop":
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    elif loop == "fastreq":  # whatever fastreq picks: uvloop when installed
        from fastreq._sync import new_event_loop

        loop_factory = new_event_loop
    else:
        loop_factory = asyncio.new_event_loop
    event_loop = loop_factory()
    try:
        return event_loop.run_until_complete(factory())
    finally:
        try:
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        finally:
            event_loop.close()


# -- raw peers ----------------------------------------------------------------------------
def raw_pycurl(spec: Spec, same_request: bool = False) -> Outcome:
    """The reference: pycurl CurlMulti + perform() + select(), handles reused (as in
    bench/curl_raw.py). ``same_request``: the request fastreq sends and the response it
    keeps (a rotating real User-Agent, Accept-Encoding offered, timeouts set, every header
    line captured), so the ratio measures fastreq's own overhead only."""
    import pycurl

    agents: Any = None
    if same_request:
        from fastreq.utils.headers import UserAgentPool

        agents = UserAgentPool().random

    url, n, conc = spec["url"], spec["n"], spec["conc"]
    multi = pycurl.CurlMulti()
    handles = []
    for _ in range(min(conc, n)):
        c = pycurl.Curl()
        c.body = []
        c.setopt(pycurl.WRITEFUNCTION, c.body.append)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.PROXY, "")
        if spec.get("ca"):
            c.setopt(pycurl.CAINFO, spec["ca"])
        if spec.get("http2"):
            c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
            c.setopt(pycurl.PIPEWAIT, 1)
        else:
            c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        if same_request:
            c.hdrs = []
            c.setopt(pycurl.HEADERFUNCTION, c.hdrs.append)
            c.setopt(pycurl.ACCEPT_ENCODING, "")
            c.setopt(pycurl.HTTPHEADER, ["Expect:"])
            c.setopt(pycurl.CONNECTTIMEOUT_MS, 10_000)
            c.setopt(pycurl.TIMEOUT_MS, 60_000)
        handles.append(c)
    free = list(handles)
    started = done = errors = nbytes = 0
    first = ""
    while done < n:
        while free and started < n:
            c = free.pop()
            c.body.clear()
            if agents is not None:
                c.hdrs.clear()
                c.setopt(pycurl.USERAGENT, agents())
            c.setopt(pycurl.URL, url)
            multi.add_handle(c)
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, failed = multi.info_read()
            for c in ok:
                multi.remove_handle(c)
                try:
                    nbytes += check(spec, c.getinfo(pycurl.RESPONSE_CODE), b"".join(c.body))
                except Exception as exc:
                    errors += 1
                    first = first or f"{type(exc).__name__}: {exc}"
                free.append(c)
            for c, code, msg in failed:
                multi.remove_handle(c)
                free.append(c)
                errors += 1
                first = first or f"curl error {code}: {msg}"
            done += len(ok) + len(failed)
            if not queued:
                break
        if done < n and (not free or started >= n):
            multi.select(1.0)
    for c in handles:
        c.close()
    multi.close()
    return _outcome(errors, first, nbytes, "select")


def raw_aiohttp(spec: Spec, loop: str = "asyncio") -> Outcome:
    async def main() -> Outcome:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=spec["conc"])
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> int:
                async with session.get(spec["url"]) as r:
                    return check(spec, r.status, await r.read())

            return await _workers(spec["n"], spec["conc"], one)

    return _run_async(main, loop)


def raw_httpx(spec: Spec, loop: str = "fastreq") -> Outcome:
    async def main() -> Outcome:
        import httpx

        conc = spec["conc"]
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

            async def one() -> int:
                r = await client.get(spec["url"])
                return check(spec, r.status_code, r.content)

            return await _workers(spec["n"], conc, one)

    return _run_async(main, loop)


def raw_niquests(spec: Spec, loop: str = "fastreq") -> Outcome:
    async def main() -> Outcome:
        import niquests

        conc = spec["conc"]
        async with niquests.AsyncSession(pool_maxsize=conc, disable_http3=True) as session:
            session.trust_env = False

            async def one() -> int:
                r = await session.get(spec["url"], timeout=30)
                return check(spec, r.status_code or 0, r.content or b"")

            return await _workers(spec["n"], conc, one)

    return _run_async(main, loop)


def raw_requests_threads(spec: Spec) -> Outcome:
    """requests with a thread pool of ``conc`` threads, one Session per thread."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    errors = nbytes = 0
    first = ""

    def one(_: int) -> None:
        nonlocal errors, nbytes, first
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
            with lock:
                sessions.append(session)
        try:
            r = session.get(spec["url"], timeout=30)
            size = check(spec, r.status_code, r.content)
            with lock:
                nbytes += size
        except Exception as exc:
            with lock:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:300]

    with ThreadPoolExecutor(spec["conc"]) as pool:
        for _ in pool.map(one, range(spec["n"])):
            pass
    for s in sessions:
        s.close()
    return _outcome(errors, first, nbytes, "threads")


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
    path (a coroutine per request), which journaled, limited or streamed batches take."""
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
            return _outcome(spec["n"], f"{len(results)} results for {spec['n']} URLs", 0,
                            _loop_name())
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
        return _outcome(errors, first, nbytes, _loop_name())

    return _run_async(main, "fastreq")


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
            return await _workers(spec["n"], spec["conc"], one)
        finally:
            await be.close()

    return _run_async(main, "fastreq")


def backend_alone(spec: Spec, backend: str) -> Outcome:
    """A fastreq backend driven directly by ``conc`` worker coroutines, no pipeline: the
    engine's own cost, to tell it apart from the pipeline's (diagnostic row)."""

    async def main() -> Outcome:
        from fastreq.backends import create_backend
        from fastreq.backends.base import RequestConfig

        be = create_backend(backend)

        async def one() -> int:
            r = await be.request(RequestConfig(spec["url"], timeout=30))
            if spec["kind"] == "json":
                if r.status_code != 200 or not r.json():
                    raise BadResponse(f"HTTP {r.status_code}")
                return len(r.content)
            return check(spec, r.status_code, r.content)

        try:
            return await _workers(spec["n"], spec["conc"], one)
        finally:
            await be.close()

    return _run_async(main, "fastreq")


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
