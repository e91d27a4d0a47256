#!/usr/bin/env python3
"""CurlBackend against a raw pycurl CurlMulti select loop and raw aiohttp+uvloop.

Small JSON GET over keep-alive HTTP/1.1 on 127.0.0.1, N requests at concurrency C, body read
and parsed as JSON by every client. Each client runs in its own process (pinned to one core
with ``taskset`` when available; the server gets another core), the clients take turns for
several rounds, and the table shows the median and best req/s, CPU microseconds per request
(best run) and the ratios the engine is judged by: of the median and of the best req/s, and
of requests per CPU-second (the steadiest on a machine shared with other work).

Server: nginx when the ``nginx`` binary exists (started here with its own config under a temp
dir, serving one small JSON file on 127.0.0.1), else a small uvloop/asyncio HTTP server in a
subprocess (slower: it may be the bottleneck), or any URL given with ``--url``.

    python bench/curl_raw.py                      # 20,000 requests, concurrency 64, 5 rounds
    python bench/curl_raw.py --requests 50000 --rounds 7 --server nginx
    python bench/curl_raw.py --url http://127.0.0.1:8080/small.json

Never a timed test: numbers vary with the machine; only the ratios measured in one run mean
something. Exits non-zero when a client got errors or wrong bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BODY = b'{"id":1,"name":"fastreq","ok":true,"items":[1,2,3],"tags":["a","b"]}'
CLIENTS = ("raw", "raw+headers", "curl-asyncio", "curl-uvloop", "aiohttp-uvloop")

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover
    loads = json.loads


# -- servers ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


def _pin(core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120;
  default_type application/json;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {root}/www; }}
  }}
}}
"""


@contextmanager
def nginx_server(core: int | None) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="fastreq-bench-nginx-") as root:
        port = _free_port()
        (Path(root) / "www").mkdir()
        (Path(root) / "www" / "small.json").write_bytes(BODY)
        conf = Path(root) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=port))
        proc = subprocess.Popen(
            [*_pin(core), nginx, "-c", str(conf), "-p", root, "-e", f"{root}/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            yield f"http://127.0.0.1:{port}/small.json"
        finally:
            proc.terminate()
            proc.wait(10)


def python_server_main(port: int) -> None:
    """A minimal keep-alive HTTP/1.1 server answering every request with BODY."""
    response = (
        b"HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: keep-alive\r\n\r\n"
        + BODY
    )

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
                self.t.write(response * n)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


@contextmanager
def python_server(core: int | None) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*_pin(core), sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}/small.json"
    finally:
        proc.terminate()
        proc.wait(10)


# -- clients (each runs in its own process) ----------------------------------------------
def client_raw(url: str, n: int, conc: int, headers: bool) -> dict[str, Any]:
    """The reference: pycurl CurlMulti + perform() + select(), handles reused."""
    import pycurl

    multi = pycurl.CurlMulti()
    free = []
    for _ in range(conc):
        c = pycurl.Curl()
        c.body = []
        c.hdrs = []
        c.setopt(pycurl.WRITEFUNCTION, c.body.append)
        if headers:
            c.setopt(pycurl.HEADERFUNCTION, c.hdrs.append)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.PROXY, "")
        free.append(c)
    started = done = errors = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while done < n:
        while free and started < n:
            c = free.pop()
            c.body.clear()
            c.hdrs.clear()
            c.setopt(pycurl.URL, url)
            multi.add_handle(c)
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, failed = multi.info_read()
            for c in ok:
                multi.remove_handle(c)
                if c.getinfo(pycurl.RESPONSE_CODE) != 200 or not loads(b"".join(c.body)):
                    errors += 1
                free.append(c)
            for c, _code, _msg in failed:
                multi.remove_handle(c)
                free.append(c)
                errors += 1
            done += len(ok) + len(failed)
            if not queued:
                break
        if done < n and not free:
            multi.select(1.0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    multi.close()
    return {"wall": wall, "cpu": cpu, "errors": errors}


async def _curl_async(url: str, n: int, conc: int) -> dict[str, Any]:
    """CurlBackend: ``conc`` worker coroutines, each awaiting ``backend.request()`` in a loop."""
    from fastreq.backends.base import RequestConfig
    from fastreq.backends.curl import CurlBackend

    backend = CurlBackend()
    request = backend.request

    async def run(total: int) -> int:
        remaining = total
        errors = 0

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                try:
                    r = await request(RequestConfig(url))
                    if r.status_code != 200 or not r.json():
                        errors += 1
                except Exception:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
        return errors

    await run(conc * 4)  # warm: connections and pooled handles
    t0, c0 = time.perf_counter(), time.process_time()
    errors = await run(n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await backend.close()
    return {"wall": wall, "cpu": cpu, "errors": errors}


async def _aiohttp(url: str, n: int, conc: int) -> dict[str, Any]:
    """Raw aiohttp: one session, ``conc`` workers, body read and parsed."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def run(total: int) -> int:
            remaining = total
            errors = 0

            async def worker() -> None:
                nonlocal remaining, errors
                while remaining > 0:
                    remaining -= 1
                    try:
                        async with session.get(url) as r:
                            if r.status != 200 or not loads(await r.read()):
                                errors += 1
                    except Exception:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(conc)))
            return errors

        await run(conc * 4)
        t0, c0 = time.perf_counter(), time.process_time()
        errors = await run(n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall": wall, "cpu": cpu, "errors": errors}


def run_client(name: str, url: str, n: int, conc: int) -> dict[str, Any]:
    if name in ("raw", "raw+headers"):
        return client_raw(url, n, conc, headers=name == "raw+headers")
    if name == "curl-asyncio":
        return asyncio.run(_curl_async(url, n, conc))
    import uvloop

    if name == "curl-uvloop":
        return uvloop.run(_curl_async(url, n, conc))
    if name == "aiohttp-uvloop":
        return uvloop.run(_aiohttp(url, n, conc))
    raise SystemExit(f"unknown client {name}")


# -- orchestration --------------------------------------------------------------------------
def spawn_client(name: str, url: str, n: int, conc: int, core: int | None) -> dict[str, Any]:
    cmd = [*_pin(core), sys.executable, __file__, "--client", name, "--url", url,
           "--requests", str(n), "--concurrency", str(conc)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"wall": float("nan"), "cpu": float("nan"), "errors": n,
                "stderr": out.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="benchmark this URL instead of starting a server")
    ap.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help=f"comma-separated subset of {', '.join(CLIENTS)}")
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve:
        python_server_main(args.serve)
        return 0
    if args.client:
        print(json.dumps(run_client(args.client, args.url, args.requests, args.concurrency)))
        return 0

    server_core, client_core = (None, None) if args.no_pin else (0, 1)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if args.url:
        server_cm: Any = _nullcontext(args.url)
        server_name = args.url
    elif args.server == "nginx" or (args.server == "auto" and _have_nginx()):
        server_cm = nginx_server(server_core)
        server_name = "nginx (1 worker)"
    else:
        server_cm = python_server(server_core)
        server_name = "python asyncio server (may be the bottleneck)"

    results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with server_cm as url:
        print(f"server: {server_name} at {url}; {args.requests} requests, concurrency "
              f"{args.concurrency}, {args.rounds} rounds; pinned: "
              f"{'server core 0, clients core 1' if _pin(0) and not args.no_pin else 'no'}")
        for rnd in range(args.rounds):
            for name in clients:
                res = spawn_client(name, url, args.requests, args.concurrency, client_core)
                results[name].append(res)
                if "stderr" in res:
                    print(f"  {name} failed:\n{res['stderr']}", file=sys.stderr)
            print(f"  round {rnd + 1}/{args.rounds} done", flush=True)

    def rps(r: dict[str, Any]) -> float:
        return float(args.requests / r["wall"]) if r["wall"] == r["wall"] else 0.0

    summary: dict[str, dict[str, float]] = {}
    print(f"\n{'client':<16} {'req/s median':>13} {'best':>9} {'worst':>9} {'CPU us/req':>11}"
          f" {'errors':>7}")
    failed = False
    for name in clients:
        rs = [rps(r) for r in results[name]]
        cpus = [r["cpu"] / args.requests * 1e6 for r in results[name]]
        errors = sum(int(r["errors"]) for r in results[name])
        failed |= errors > 0
        summary[name] = {"median": statistics.median(rs), "best": max(rs), "cpu": min(cpus)}
        print(f"{name:<16} {statistics.median(rs):>13,.0f} {max(rs):>9,.0f} {min(rs):>9,.0f}"
              f" {min(cpus):>11.1f} {errors:>7}")

    def ratio(a: str, b: str) -> None:
        if a in summary and b in summary and summary[b]["median"]:
            med = summary[a]["median"] / summary[b]["median"]
            best = summary[a]["best"] / summary[b]["best"]
            cpu = summary[b]["cpu"] / summary[a]["cpu"]  # req per CPU-second, best runs
            print(f"{a + ' / ' + b:<34} median {med:5.2f}x   best {best:5.2f}x   "
                  f"per CPU {cpu:5.2f}x")

    print()
    ratio("curl-uvloop", "raw")
    ratio("curl-asyncio", "raw")
    ratio("curl-uvloop", "raw+headers")
    ratio("curl-uvloop", "aiohttp-uvloop")
    ratio("raw+headers", "raw")
    return 1 if failed else 0


@contextmanager
def _nullcontext(value: str) -> Iterator[str]:
    yield value


def _have_nginx() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


if __name__ == "__main__":
    sys.exit(main())
