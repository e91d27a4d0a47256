"""A recording HTTP test server on 127.0.0.1, run by an aiohttp.web app in a background thread.

Routes (all record a :class:`Hit` in ``server.hits``):

- ``/json``                    ``{"ok": true, "path": ...}`` application/json
- ``/json/{n}``                ``{"n": n}``
- ``/problem``                 application/problem+json
- ``/text``                    text/plain; charset=utf-8 ``hello``
- ``/latin1``                  text/plain; charset=iso-8859-1 ``café``
- ``/bytes/{n}``               ``n`` bytes application/octet-stream
- ``/status/{code}``           that status with a JSON body ``{"status": code}``
- ``/echo`` (any method)       JSON: method, path, query pairs, headers, body text, cookies
- ``/flaky/{key}/{n}``         503 for the first ``n`` hits of ``key``, then 200 ``{"hits": k}``
                               (``?status=429`` to answer another status, ``?retry_after=``)
- ``/slow?delay=s``            sleeps ``s`` seconds, then ``{"slept": s}``
- ``/drip?chunks=n&interval=s`` sends ``n`` bytes one per ``s`` seconds
- ``/redirect/{n}``            302 chain of ``n`` hops ending at ``/json``
- ``/redirect-to?url=&status=`` redirect to ``url`` (default 302)
- ``/set-cookies``             two Set-Cookie headers (a=1, b=2)
- ``/gzip``                    gzip-compressed JSON with Content-Encoding: gzip
- ``/ndjson/{n}``              ``n`` JSON lines, chunked
- ``/feed/{n}?interval=s``      ``n`` JSON lines, one per ``s`` seconds (``feed_sent`` counts)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Hit:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    at: float
    peer_port: int


@dataclass
class TestServer:
    __test__ = False  # not a test class, despite the name
    base: str = ""
    hits: list[Hit] = field(default_factory=list)
    flaky_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: int = 0
    max_in_flight: int = 0
    feed_sent: int = 0

    def url(self, path: str = "/") -> str:
        return self.base + path

    def reset(self) -> None:
        self.hits.clear()
        self.flaky_counts.clear()
        self.in_flight = 0
        self.max_in_flight = 0
        self.feed_sent = 0

    def hits_for(self, prefix: str) -> list[Hit]:
        return [h for h in self.hits if h.path.startswith(prefix)]


def _json(data: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type=content_type
    )


def build_app(state: TestServer) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state.hits.append(
            Hit(
                request.method,
                request.path,
                list(request.query.items()),
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.monotonic(),
                peer[1] if peer else 0,
            )
        )
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            state.in_flight -= 1

    async def json_root(request: web.Request) -> web.Response:
        return _json({"ok": True, "path": request.path})

    async def json_n(request: web.Request) -> web.Response:
        return _json({"n": int(request.match_info["n"])})

    async def problem(request: web.Request) -> web.Response:
        return _json({"title": "nope"}, content_type="application/problem+json")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="hello", content_type="text/plain", charset="utf-8")

    async def latin1(request: web.Request) -> web.Response:
        return web.Response(
            body="café".encode("iso-8859-1"),
            headers={"Content-Type": "text/plain; charset=iso-8859-1"},
        )

    async def raw_bytes(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(body=bytes(i % 256 for i in range(n)),
                            content_type="application/octet-stream")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if code in (204, 304) or code < 200:
            return web.Response(status=code)
        return _json({"status": code}, status=code)

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return _json(
            {
                "method": request.method,
                "path": request.path,
                "query": [[k, v] for k, v in request.query.items()],
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
                "cookies": dict(request.cookies),
            }
        )

    async def flaky(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        n = int(request.match_info["n"])
        state.flaky_counts[key] += 1
        hits = state.flaky_counts[key]
        if hits <= n:
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            code = int(request.query.get("status", "503"))
            return web.Response(status=code, text="try again", headers=headers)
        return _json({"hits": hits})

    async def slow(request: web.Request) -> web.Response:
        delay = float(request.query.get("delay", "1"))
        await asyncio.sleep(delay)
        return _json({"slept": delay})

    async def drip(request: web.Request) -> web.StreamResponse:
        chunks = int(request.query.get("chunks", "10"))
        interval = float(request.query.get("interval", "0.1"))
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = chunks
        await resp.prepare(request)
        for _ in range(chunks):
            await resp.write(b"x")
            await asyncio.sleep(interval)
        await resp.write_eof()
        return resp

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = "/json" if n <= 1 else f"/redirect/{n - 1}"
        raise web.HTTPFound(target)

    async def redirect_to(request: web.Request) -> web.Response:
        code = int(request.query.get("status", "302"))
        return web.Response(status=code, headers={"Location": request.query["url"]})

    async def set_cookies(request: web.Request) -> web.Response:
        resp = _json({"set": True})
        resp.set_cookie("a", "1")
        resp.set_cookie("b", "2")
        return resp

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps({"compressed": True}).encode())
        return web.Response(
            body=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async def ndjson(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(n):
            await resp.write(json.dumps({"i": i}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def feed(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        interval = float(request.query.get("interval", "0.05"))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(n):
            await resp.write(json.dumps({"i": i}).encode() + b"\n")
            state.feed_sent = i + 1
            await asyncio.sleep(interval)
        await resp.write_eof()
        return resp

    app = web.Application(middlewares=[record])
    app.router.add_get("/json", json_root)
    app.router.add_get("/json/{n}", json_n)
    app.router.add_get("/problem", problem)
    app.router.add_get("/text", text)
    app.router.add_get("/latin1", latin1)
    app.router.add_get("/bytes/{n}", raw_bytes)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/flaky/{key}/{n}", flaky)
    app.router.add_get("/slow", slow)
    app.router.add_get("/drip", drip)
    app.router.add_route("*", "/redirect/{n}", redirect)
    app.router.add_route("*", "/redirect-to", redirect_to)
    app.router.add_get("/set-cookies", set_cookies)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/ndjson/{n}", ndjson)
    app.router.add_get("/feed/{n}", feed)
    return app


class ServerThread:
    """Runs an aiohttp app on 127.0.0.1 in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, app: web.Application, ssl_context: Any = None) -> None:
        self._app = app
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("test server did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._cleanup())
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=self._ssl, backlog=1024)
        await site.start()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still running (a slow or endless route whose client left) are cancelled
        # here rather than destroyed pending when the loop closes.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
