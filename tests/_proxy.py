"""A small recording forward HTTP proxy on 127.0.0.1, run by asyncio in a background thread.

It understands the two things an HTTP client asks of a forward proxy:

- absolute-form requests (``GET http://host:port/path HTTP/1.1``): the request is sent on to
  the origin in origin-form, without the proxy's own headers (``Proxy-Authorization``,
  ``Proxy-Connection``), and the origin's response is relayed back;
- ``CONNECT host:port``: a ``200`` and then a blind two-way tunnel (HTTPS through the proxy).

Every request the proxy receives is recorded in ``proxy.records`` (method, target, headers
with lower-case names, including ``proxy-authorization``), *before* any credential check, so
tests can assert that traffic went through the proxy and which credentials it carried.

With ``proxy.require_auth(user, password)`` a request without the matching
``Proxy-Authorization: Basic ...`` gets ``407 Proxy Authentication Required``.

One request per client connection: every answer carries ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from ._streamserver import StreamServer

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_MAX_HEAD = 64 * 1024


@dataclass
class ProxyRecord:
    """One request as the proxy received it."""

    method: str
    target: str  # absolute URL for forwarded requests, ``host:port`` for CONNECT
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    header_items: list[tuple[str, str]] = field(default_factory=list)
    authorized: bool = True


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        items.append((name.strip(), value.strip()))
    return lines[0], items


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body exactly as sent (framing included), to relay it unchanged."""
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        out += line
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                out += trailer
                if trailer == b"\r\n":
                    return bytes(out)
        out += await reader.readexactly(size + 2)


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    with contextlib.suppress(Exception):
        writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()


class ProxyServer(StreamServer):
    """The proxy; ``url`` is ``http://127.0.0.1:<port>``. ``stop()`` shuts it down."""

    thread_name = "test-proxy"

    def __init__(self) -> None:
        self.records: list[ProxyRecord] = []
        self.credentials: tuple[str, str] | None = None
        super().__init__()

    # -- test API ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with_auth(self, user: str, password: str) -> str:
        """The proxy URL with (percent-encoded) credentials in it."""
        return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def require_auth(self, user: str, password: str) -> None:
        """From now on, answer 407 unless ``Proxy-Authorization`` carries these."""
        self.credentials = (user, password)

    def reset(self) -> None:
        self.records.clear()
        self.credentials = None

    def targets(self) -> list[str]:
        return [record.target for record in self.records]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream = await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            await _close(upstream)
            await _close(writer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            await self._answer(writer, 431, "Request Header Fields Too Large")
            return None
        request_line, items = _parse_head(head)
        method, _, rest = request_line.partition(" ")
        target, _, _version = rest.rpartition(" ")
        headers = {name.lower(): value for name, value in items}
        record = ProxyRecord(method.upper(), target, headers, items)
        self.records.append(record)

        if self.credentials is not None:
            given = headers.get("proxy-authorization", "")
            scheme, _, token = given.partition(" ")
            expected = _basic(*self.credentials).partition(" ")[2]
            if scheme.lower() != "basic" or token.strip() != expected:
                record.authorized = False
                await self._answer(
                    writer,
                    407,
                    "Proxy Authentication Required",
                    extra='Proxy-Authenticate: Basic realm="fastreq-test"\r\n',
                )
                return None

        if record.method == "CONNECT":
            return await self._tunnel(target, reader, writer)
        return await self._forward(record, items, reader, writer)

    async def _answer(
        self, writer: asyncio.StreamWriter, status: int, reason: str, extra: str = ""
    ) -> None:
        body = f"{status} {reason}\n".encode()
        writer.write(
            (
                f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            + body
        )
        await writer.drain()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        host, _, port = target.rpartition(":")
        try:
            up_reader, up_writer = await self.connect(host.strip("[]"), int(port))
        except (OSError, ValueError):
            await self._answer(writer, 502, "Bad Gateway")
            return None
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        return up_writer

    async def _forward(
        self,
        record: ProxyRecord,
        items: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> asyncio.StreamWriter | None:
        url = urlsplit(record.target)
        if url.scheme != "http" or not url.hostname:
            await self._answer(writer, 400, "Bad Request (absolute http:// URL expected)")
            return None
        headers = record.headers
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = b""
        try:
            up_reader, up_writer = await self.connect(url.hostname, url.port or 80)
        except OSError:
            await self._answer(writer, 502, "Bad Gateway")
            return None
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        lines = [f"{record.method} {path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in items if k.lower() not in _HOP_BY_HOP]
        lines.append("Connection: close")
        up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()

        # Relay the response: its head without hop-by-hop headers, then every byte to EOF.
        response_head = await up_reader.readuntil(b"\r\n\r\n")
        status_line, response_items = _parse_head(response_head)
        out = [status_line]
        out += [f"{k}: {v}" for k, v in response_items if k.lower() not in _HOP_BY_HOP]
        out.append("Connection: close")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        await _pipe(up_reader, writer)
        return up_writer


class UploadSink(ProxyServer):
    """Not a proxy: an origin that takes a request body of any size (``Content-Length``,
    chunked, ``Expect: 100-continue``) and answers ``{"received": n, "sha256": ...}``.

    The aiohttp test server refuses bodies over 1 MiB; this one exists for large uploads.
    """

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, items = _parse_head(head)
        method, _, rest = request_line.partition(" ")
        target = rest.rpartition(" ")[0]
        headers = {name.lower(): value for name, value in items}
        self.records.append(ProxyRecord(method.upper(), target, headers, items))
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(await _read_chunked(reader))
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        payload = json.dumps(
            {"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return None


class FaultServer(ProxyServer):
    """Not a proxy: an origin that misbehaves on purpose, chosen by path.

    - ``/truncated``          ``Content-Length: 100`` but 10 bytes, then close
    - ``/truncated-chunked``  one chunk, then close without the last chunk
    - ``/empty``              reads the request, closes without a byte of response
    - ``/garbage``            a reply that is not HTTP at all
    - ``/until-close``        no Content-Length, no chunking: the body ends at close (valid)
    """

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, items = _parse_head(head)
        method, _, rest = request_line.partition(" ")
        target = rest.rpartition(" ")[0]
        headers = {name.lower(): value for name, value in items}
        self.records.append(ProxyRecord(method.upper(), target, headers, items))
        await reader.readexactly(int(headers.get("content-length", "0")))
        path = urlsplit(target).path
        ok_head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        if path == "/truncated":
            writer.write(f"{ok_head}Content-Length: 100\r\n\r\n".encode() + b"0123456789")
        elif path == "/truncated-chunked":
            writer.write(
                f"{ok_head}Transfer-Encoding: chunked\r\n\r\n".encode() + b"a\r\n0123456789\r\n"
            )
        elif path == "/garbage":
            writer.write(b"THIS IS NOT HTTP\r\n\r\nat all\r\n")
        elif path == "/until-close":
            writer.write(f"{ok_head}Connection: close\r\n\r\n".encode() + b"body-until-close")
        # "/empty" (and anything else): nothing at all
        await writer.drain()
        return None


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end].split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        out += raw[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def basic_auth_header(user: str, password: str) -> str:
    """The ``Proxy-Authorization`` value a client sends for these credentials."""
    return _basic(user, password)
