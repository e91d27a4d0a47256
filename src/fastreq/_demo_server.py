"""fastreq's embedded HTTP/1.1 server: asyncio + h11, in a background thread, on 127.0.0.1.

It powers ``fastreq demo`` and ``fastreq serve`` (no internet needed) and is usable from tests
and benchmarks. Keep-alive and pipelining are supported; every request is counted.

Routes (``{n}`` is any integer; a query string is ignored except by ``/echo``):

- ``/item/{n}``      200, a small JSON object ``{"id": n, ...}``
- ``/slow/{n}``      200 JSON after sleeping 50-200 ms (the same delay for the same ``n``)
- ``/flaky/{n}``     503 with ``Retry-After: 0`` on the first hit for that ``n``, then 200 JSON
- ``/missing/{n}``   404 JSON
- ``/fail/{n}``      500 JSON, always
- ``/status/{code}`` that status, JSON ``{"status": code}``
- ``/redirect/{n}``  302 to ``/item/{n}``
- ``/echo...``       any method: JSON with the method, path, query, headers (lower-case names),
                     the body as text and, when the body is JSON, parsed as ``json``
- ``/``              JSON list of the routes

Example::

    from fastreq._demo_server import DemoServer

    with DemoServer() as server:               # start() ... stop()
        print(server.url("/item/1"))           # http://127.0.0.1:41237/item/1
        ...
        print(server.hits, server.route_hits)  # 1 Counter({'item': 1})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl

import h11

from fastreq._sync import new_event_loop

__all__ = ["ROUTES", "DemoServer"]

#: Route name → what it does (shown by ``/`` and ``fastreq serve``).
ROUTES: dict[str, str] = {
    "/item/{n}": "200, small JSON",
    "/slow/{n}": "200 JSON after 50-200 ms",
    "/flaky/{n}": "503 (Retry-After: 0) on the first hit for n, then 200",
    "/missing/{n}": "404",
    "/fail/{n}": "500, always",
    "/status/{code}": "that status",
    "/redirect/{n}": "302 to /item/{n}",
    "/echo": "any method: the request as JSON (method, path, query, headers, body, json)",
}

_Headers = list[tuple[bytes, bytes]]
_JSON_TYPE = (b"content-type", b"application/json")
_SERVER = (b"server", b"fastreq-demo")


def _json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class DemoServer:
    """An HTTP/1.1 server on ``host`` (127.0.0.1) and an ephemeral port, in its own thread.

    ``hits`` counts every request received (retries included), ``route_hits`` counts them per
    route name (``"item"``, ``"flaky"``...). ``reset()`` clears the counters and the flaky
    routes' memory. ``slow_delay`` is the ``(min, max)`` sleep of ``/slow/{n}`` in seconds.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *,
        slow_delay: tuple[float, float] = (0.05, 0.2),
    ) -> None:
        self.host = host
        self.port = port
        self.slow_delay = slow_delay
        self.hits = 0
        self.route_hits: Counter[str] = Counter()
        self._flaky_seen: set[int] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._connections: set[_Connection] = set()

    # -- lifecycle (called from any thread) ----------------------------------------------
    def start(self) -> DemoServer:
        """Start serving; returns once the port is bound (``self.port`` is then set)."""
        if self._thread is not None:
            raise RuntimeError("DemoServer is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="fastreq-demo-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; wait for the thread to end."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def reset(self) -> None:
        """Forget the hit counters and which ``/flaky/{n}`` were already hit."""
        self.hits = 0
        self.route_hits = Counter()
        self._flaky_seen = set()

    # -- the server thread ---------------------------------------------------------------
    def _run(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start() if it happens before ready
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for connection in list(self._connections):
                connection.abort()
            for _ in range(100):  # let connection_lost run before the loop closes
                if not self._connections:
                    break
                await asyncio.sleep(0.001)
            await server.wait_closed()

    # -- routes --------------------------------------------------------------------------
    def respond(self, request: h11.Request, body: bytes) -> _Reply:
        """The reply to one request (runs in the server thread)."""
        self.hits += 1
        target = request.target.decode("latin-1")
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/")
        route = parts[0]
        if route == "echo":
            self.route_hits["echo"] += 1
            return _Reply(200, _echo(request, path, query, body))
        if path == "/":
            self.route_hits["index"] += 1
            return _Reply(200, _json_body({"server": "fastreq demo", "routes": ROUTES}))
        arg = parts[1] if len(parts) == 2 else ""
        handler = _NUMBERED.get(route)
        if handler is None or not arg.isdigit():
            self.route_hits["unknown"] += 1
            return _Reply(404, _json_body({"error": "no such route", "path": path}))
        self.route_hits[route] += 1
        return handler(self, int(arg))

    def _item(self, n: int) -> _Reply:
        return _Reply(200, _json_body({"id": n, "name": f"item {n}", "price": n % 97}))

    def _slow(self, n: int) -> _Reply:
        low, high = self.slow_delay
        delay = low + (high - low) * ((n * 2654435761) % 1000) / 999
        return _Reply(200, _json_body({"id": n, "slept": round(delay, 3)}), delay=delay)

    def _flaky(self, n: int) -> _Reply:
        if n not in self._flaky_seen:
            self._flaky_seen.add(n)
            return _Reply(503, _json_body({"error": "try again"}), [(b"retry-after", b"0")])
        return _Reply(200, _json_body({"id": n, "flaky": True}))

    def _missing(self, n: int) -> _Reply:
        return _Reply(404, _json_body({"error": "not found", "id": n}))

    def _fail(self, n: int) -> _Reply:
        return _Reply(500, _json_body({"error": "internal error (on purpose)", "id": n}))

    def _status(self, code: int) -> _Reply:
        if not 200 <= code <= 599:
            return _Reply(400, _json_body({"error": "status must be 200-599"}))
        return _Reply(code, _json_body({"status": code}))

    def _redirect(self, n: int) -> _Reply:
        location = f"/item/{n}"
        return _Reply(302, _json_body({"location": location}),
                      [(b"location", location.encode())])


class _Reply:
    """A response to send, ``delay`` seconds from now."""

    __slots__ = ("body", "delay", "headers", "send_body", "status")

    def __init__(self, status: int, body: bytes, headers: _Headers | None = None,
                 delay: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        self.delay = delay
        self.send_body = True  # False for HEAD, 204 and 304


class _Connection(asyncio.Protocol):
    """One client connection: h11 parses, :meth:`DemoServer.respond` answers, in order."""

    def __init__(self, server: DemoServer) -> None:
        self.server = server
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None  # a delayed reply is pending

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server._connections.discard(self)

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._process()
        return True  # half-open: a pending reply can still be sent; _process closes

    def _process(self) -> None:
        conn = self.conn
        while self.timer is None and self.transport is not None:
            if self.transport.is_closing():
                return
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    self._write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, []
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert self.request is not None
                reply = self.server.respond(self.request, b"".join(self.body))
                if self.request.method == b"HEAD" or reply.status in (204, 304):
                    reply.send_body = False
                self.request, self.body = None, []
                if reply.delay > 0:
                    loop = asyncio.get_running_loop()
                    self.timer = loop.call_later(reply.delay, self._send_later, reply)
                    return
                if not self._send(reply):
                    return
            else:  # ConnectionClosed, or PAUSED (cannot happen: we answer each request)
                self.transport.close()
                return

    def _send_later(self, reply: _Reply) -> None:
        self.timer = None
        if self._send(reply):
            self._process()

    def _send(self, reply: _Reply) -> bool:
        """Write ``reply``; ``True`` if the connection stays open for the next request."""
        conn = self.conn
        headers = [_JSON_TYPE, _SERVER, *reply.headers]
        if reply.status not in (204, 304):
            headers.append((b"content-length", b"%d" % len(reply.body)))
        out = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        if reply.send_body:
            out += conn.send(h11.Data(data=reply.body)) or b""
        self._write(out + (conn.send(h11.EndOfMessage()) or b""))
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        assert self.transport is not None
        self.transport.close()  # Connection: close, or HTTP/1.0
        return False

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        conn = self.conn
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = _json_body({"error": str(exc)})
            with contextlib.suppress(h11.LocalProtocolError):
                self._write(
                    (conn.send(h11.Response(status_code=exc.error_status_hint, headers=[
                        _JSON_TYPE, (b"content-length", b"%d" % len(body)),
                        (b"connection", b"close"),
                    ])) or b"")
                    + (conn.send(h11.Data(data=body)) or b"")
                    + (conn.send(h11.EndOfMessage()) or b"")
                )
        assert self.transport is not None
        self.transport.close()

    def _write(self, data: bytes | None) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


_NUMBERED: dict[str, Callable[[DemoServer, int], _Reply]] = {
    "item": DemoServer._item,
    "slow": DemoServer._slow,
    "flaky": DemoServer._flaky,
    "missing": DemoServer._missing,
    "fail": DemoServer._fail,
    "status": DemoServer._status,
    "redirect": DemoServer._redirect,
}


def _echo(request: h11.Request, path: str, query: str, body: bytes) -> bytes:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    text_body = body.decode("utf-8", errors="replace")
    parsed: Any = None
    if body:
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
    return _json_body({
        "method": request.method.decode("ascii"),
        "path": path,
        "query": parse_qsl(query, keep_blank_values=True),
        "headers": headers,
        "body": text_body,
        "json": parsed,
    })
