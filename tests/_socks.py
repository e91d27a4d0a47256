"""A tiny recording SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929 user/password) on 127.0.0.1.

``records`` holds ``(username, "host:port")`` per tunnel opened. With ``credentials`` set,
only that user/password pair is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct

from ._streamserver import StreamServer


class Socks5Server(StreamServer):
    thread_name = "test-socks"

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.records: list[tuple[str, str]] = []
        super().__init__()

    def url(self, scheme: str = "socks5") -> str:
        if self.credentials is None:
            return f"{scheme}://127.0.0.1:{self.port}"
        user, password = self.credentials
        return f"{scheme}://{user}:{password}@127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream = await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (upstream, writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5:
            return None
        wanted = 2 if self.credentials is not None else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return None
        writer.write(bytes([5, wanted]))
        user = ""
        if wanted == 2:
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            password = (await reader.readexactly(plen)).decode()
            ok = (user, password) == self.credentials
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return None
        _, command, _, address_type = await reader.readexactly(4)
        if address_type == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif address_type == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        else:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.records.append((user, f"{host}:{port}"))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            return None
        try:
            up_reader, up_writer = await self.connect(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))
            return None
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        return up_writer
