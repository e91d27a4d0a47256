"""A raw-socket origin on 127.0.0.1 that misbehaves on purpose, chosen by the request path.

Run by asyncio in a background thread (like ``tests/_proxy.py``); every request it reads is
recorded in ``faults.records`` (method, path, query, headers, body, connection number,
request number on that connection) before it misbehaves, so tests can check what was sent.

Paths (``?`` parameters optional):

- ``/ok``                    200, ``Content-Length``, keep-alive; body ``ok``
- ``/echo``                  200 JSON: method, path, headers, body (keep-alive)
- ``/reset``                 reads the request, then resets the connection (RST)
- ``/reset-mid-body``        headers and half the body, then RST
- ``/close-before-status``   reads the request, closes without a byte (``?after=s``: s later)
- ``/garbage``               reads the request, answers a line that is no status line, closes
- ``/short-body``            ``Content-Length: 100``, 10 bytes, close
- ``/conflicting-length``    ``Content-Length: 5`` and ``Content-Length: 10``
- ``/bad-chunked``           a chunk size that is not hex
- ``/truncated-chunked``     one chunk, then close without the last chunk
- ``/drip?interval=s``       headers promise 10 MB; one byte per ``s`` seconds, forever
- ``/drip-head?interval=s``  the status line itself, one byte per ``s`` seconds, forever
- ``/never``                 reads the request, never answers
- ``/stale``                 answers the first request of a connection (keep-alive); closes
                             any later request on that connection unanswered (a keep-alive
                             connection the server dropped just as it was reused)
- ``/header-crlf``, ``/header-nul``, ``/header-cr``  a header value with LF / NUL / bare CR
- ``/bomb/{gzip,br,zstd}``   a small compressed body that inflates to ``BOMB_SIZE`` bytes
- ``/chain6``                ``Content-Encoding: gzip`` six times over (six layers)
- ``/chain5``                five gzip layers (allowed)
- ``/loop``                  302 to itself
- ``/redirect?to=URL&status=N``  redirect (302 by default) to ``URL``; ``&body=N``: with a
                             body of N bytes, ``&bomb=gzip``: with a ``/bomb/gzip`` body,
                             ``&drip=N``: with a body of N bytes sent one per ``interval``
- ``/redirect-endless``      302 to ``/ok`` whose body never ends (10 GB promised)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import socket
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastreq.backends import create_backend
from fastreq.backends.base import NormalizedResponse, RequestConfig

from ._streamserver import StreamServer

BOMB_SIZE = 200 * 1024 * 1024
_TWO_OK = b"Content-Length: 2\r\n\r\nok"


@dataclass
class FaultRecord:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    conn: int  # connection number (1, 2, ...)
    nth: int  # request number on its connection (1, 2, ...)
    target: str = ""  # the request target exactly as sent
    header_items: list[tuple[str, str]] = field(default_factory=list)  # as received


@functools.cache
def bomb(encoding: str) -> bytes:
    """``BOMB_SIZE`` zero bytes compressed with ``encoding`` (cached: built once per run)."""
    block = bytes(1024 * 1024)
    count = BOMB_SIZE // len(block)
    if encoding == "gzip":
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [comp.compress(block) for _ in range(count)]
        return b"".join(parts) + comp.flush()
    if encoding == "br":
        import brotli  # type: ignore[import-untyped]

        br = brotli.Compressor(quality=5)
        parts = [br.process(block) for _ in range(count)]
        return bytes(b"".join(parts) + br.finish())
    if encoding == "zstd":
        import zstandard

        zc = zstandard.ZstdCompressor(level=3).compressobj()
        parts = [zc.compress(block) for _ in range(count)]
        return bytes(b"".join(parts) + zc.flush())
    raise ValueError(encoding)


def gzip_layers(data: bytes, layers: int) -> bytes:
    for _ in range(layers):
        data = gzip.compress(data)
    return data


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            items.append((name.strip(" \t"), value.strip(" \t")))
    return lines[0], items


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Hangup(Exception):
    """Close this connection now (after the reply already written)."""


class FaultServer(StreamServer):
    """The server; ``url`` is ``http://127.0.0.1:<port>``; ``stop()`` shuts it down."""

    thread_name = "test-faults"

    def __init__(self) -> None:
        self.records: list[FaultRecord] = []
        self.port = 0
        self.connections = 0
        self.open_connections = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.records.clear()

    def paths(self) -> list[str]:
        return [r.path for r in self.records]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        conn = self.connections
        try:
            nth = 0
            while True:
                nth += 1
                if not await self._serve_one(reader, writer, conn, nth):
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                _Hangup):
            pass
        finally:
            self.open_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int, nth: int
    ) -> bool:
        """Serve one request; ``False`` ends the connection."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, items = _parse_head(head)
        method, _, rest = request_line.partition(" ")
        target = rest.rpartition(" ")[0]
        headers = {name.lower(): value for name, value in items}
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body += (await reader.readexactly(size + 2))[:-2]
        elif headers.get("content-length"):
            body = await reader.readexactly(int(headers["content-length"]))
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        self.records.append(
            FaultRecord(method.upper(), parts.path, query, headers, body, conn, nth, target, items)
        )
        return await self._answer(parts.path, query, method.upper(), headers, body, writer, nth)

    async def _answer(
        self, path: str, query: dict[str, str], method: str, headers: dict[str, str],
        body: bytes, writer: asyncio.StreamWriter, nth: int,
    ) -> bool:
        def reply(status: str, extra: str, payload: bytes, *, close: bool = False) -> None:
            conn = "Connection: close\r\n" if close else ""
            writer.write(
                f"HTTP/1.1 {status}\r\n{extra}{conn}Content-Length: {len(payload)}\r\n\r\n"
                .encode("latin-1") + payload
            )

        interval = float(query.get("interval", "0.05"))
        if path in ("/ok", "/stale") and (path == "/ok" or nth == 1):
            reply("200 OK", "Content-Type: text/plain\r\n", b"ok")
        elif path == "/stale":
            _reset(writer)  # a later request on a reused connection: dropped unanswered
            return False
        elif path == "/echo":
            payload = json.dumps({
                "method": method, "path": path, "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }).encode()
            reply("200 OK", "Content-Type: application/json\r\n", payload)
        elif path == "/reset":
            _reset(writer)
            return False
        elif path == "/reset-mid-body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
            await writer.drain()
            await asyncio.sleep(0.05)
            _reset(writer)
            return False
        elif path == "/close-before-status":
            await asyncio.sleep(float(query.get("after", "0")))
            return False
        elif path == "/garbage":
            writer.write(b"garbage\r\n\r\n")
            await writer.drain()
            return False
        elif path == "/short-body":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            return False
        elif path == "/conflicting-length":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n0123456789"
            )
            await writer.drain()
            return False
        elif path == "/bad-chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            )
            await writer.drain()
            return False
        elif path == "/truncated-chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"
            )
            await writer.drain()
            return False
        elif path == "/drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
            while True:
                await writer.drain()
                await asyncio.sleep(interval)
                writer.write(b"x")
        elif path == "/drip-head":
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(interval)
        elif path == "/never":
            await asyncio.sleep(3600)
        elif path == "/header-crlf":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Bad: a\nInjected: yes\r\n" + _TWO_OK)
        elif path == "/header-nul":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\n" + _TWO_OK)
        elif path == "/header-cr":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Bad: a\rInjected: yes\r\n" + _TWO_OK)
        elif path.startswith("/bomb/"):
            encoding = path.rpartition("/")[2]
            reply("200 OK", f"Content-Type: application/octet-stream\r\n"
                  f"Content-Encoding: {encoding}\r\n", bomb(encoding))
        elif path in ("/chain6", "/chain5"):
            layers = int(path[-1])
            reply("200 OK", "Content-Type: text/plain\r\nContent-Encoding: "
                  + ", ".join(["gzip"] * layers) + "\r\n", gzip_layers(b"layered", layers))
        elif path == "/loop":
            reply("302 Found", "Location: /loop\r\n", b"")
        elif path == "/redirect":
            status, extra = query.get("status", "302"), f"Location: {query['to']}\r\n"
            payload = b"r" * int(query.get("body", "0"))
            if "bomb" in query:  # a compressed body that would inflate to BOMB_SIZE
                extra += f"Content-Encoding: {query['bomb']}\r\n"
                payload = bomb(query["bomb"])
            if "drip" in query:
                size = int(query["drip"])
                writer.write(f"HTTP/1.1 {status} Moved\r\n{extra}Content-Length: {size}\r\n\r\n"
                             .encode("latin-1"))
                for _ in range(size):
                    await writer.drain()
                    await asyncio.sleep(interval)
                    writer.write(b"r")
            else:
                reply(f"{status} Moved", extra, payload)
        elif path == "/redirect-endless":
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /ok\r\n"
                         b"Content-Length: 10000000000\r\n\r\n")
            while True:  # until the client hangs up
                writer.write(b"r" * 65536)
                await writer.drain()
        else:
            reply("404 Not Found", "", b"")
        await writer.drain()
        return True


def run_configs(
    backend_name: str, *configs: RequestConfig
) -> list[NormalizedResponse | BaseException]:
    """Send ``configs`` one after another on one backend; errors are returned, not raised."""

    async def main() -> list[NormalizedResponse | BaseException]:
        out: list[NormalizedResponse | BaseException] = []
        async with create_backend(backend_name) as backend:
            for config in configs:
                try:
                    out.append(await backend.request(config))
                except Exception as exc:
                    out.append(exc)
        return out

    return asyncio.run(main())


def run_one(
    backend_name: str, url: str, limit: float = 10.0, **options: Any
) -> NormalizedResponse | BaseException:
    """One request through a fresh backend (``limit``: its timeout unless given)."""
    options.setdefault("timeout", limit)
    return run_configs(backend_name, RequestConfig(url, **options))[0]
