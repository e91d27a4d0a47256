"""A fast keep-alive HTTP/1.1 origin for soak tests (asyncio.Protocol, background thread).

``GET /<kind>/<i>`` (anything else: 404). Each input ``i`` gets one *kind*:

- ``ok``       200 ``{"i": i}`` at once
- ``slow``     200 after ``slow_delay`` seconds
- ``reset``    the first attempt is reset (RST); later attempts get 200
- ``busy``     the first attempt gets ``503`` with ``Retry-After: 0``; later attempts 200
- ``silent``   never answered (the client's timeout must cut it off)

``served`` counts the 200s sent per ``i``; ``attempts`` every request per ``i``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter


class _Conn(asyncio.Protocol):
    def __init__(self, server: SoakServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            target = line.split(" ")[1] if line.count(" ") >= 2 else "/"
            if not self.server.handle(self, target):
                return

    def reply(self, status: bytes, body: bytes, extra: bytes = b"") -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def reset(self) -> None:
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class SoakServer:
    def __init__(self, slow_delay: float = 0.05) -> None:
        self.slow_delay = slow_delay
        self.served: Counter[int] = Counter()
        self.attempts: Counter[int] = Counter()
        self.open = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="soak-server", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("soak server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Conn(self), "127.0.0.1", 0, backlog=2048)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _ok(self, conn: _Conn, i: int) -> None:
        if conn.transport is None or conn.transport.is_closing():
            return
        self.served[i] += 1
        conn.reply(b"200 OK", b'{"i":%d}' % i)

    def handle(self, conn: _Conn, target: str) -> bool:
        """Answer one request; ``False``: the connection is gone or parked."""
        parts = target.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            conn.reply(b"404 Not Found", b"{}")
            return True
        kind, i = parts[1], int(parts[2])
        self.attempts[i] += 1
        first = self.attempts[i] == 1
        if kind == "ok" or (kind in ("reset", "busy") and not first):
            self._ok(conn, i)
        elif kind == "reset":
            conn.reset()
            return False
        elif kind == "busy":
            conn.reply(b"503 Service Unavailable", b"{}", b"Retry-After: 0\r\n")
        elif kind == "slow":
            # answered later, in order: nothing else is read from this connection meanwhile
            assert conn.transport is not None
            conn.transport.pause_reading()

            def later() -> None:
                self._ok(conn, i)
                if conn.transport is not None and not conn.transport.is_closing():
                    conn.transport.resume_reading()
                    conn.data_received(b"")

            self._loop.call_later(self.slow_delay, later)
            return False
        elif kind == "silent":
            return False  # never answered; the client gives up and closes
        else:
            conn.reply(b"404 Not Found", b"{}")
        return True
