"""Bounded, incremental decoding of a ``Content-Encoding`` chain (decompression bombs).

The backends that cannot bound their library's own decoding read the raw body and run it
through :class:`BoundedDecoder`: no input chunk is ever inflated whole. Every piece the
decoder produces is at most :data:`PIECE_SIZE` bytes, and the decoded total is checked
against a limit as it grows, so a small compressed body that inflates to gigabytes fails
with :class:`~fastreq.exceptions.ResponseDecodeError` after at most ``limit`` bytes.

Supported: ``gzip`` / ``x-gzip`` (several members too), ``deflate`` (zlib-wrapped or raw,
told apart by the zlib header like browsers do), ``br`` (``brotli`` or ``brotlicffi``) and
``zstd`` (``zstandard``); ``identity`` is skipped. Up to five codings are decoded, last
applied first. Example::

    decoder = BoundedDecoder("gzip", 100 << 20, backend_name="httpx", url=url)
    parts = [piece for chunk in raw_chunks for piece in decoder.feed(chunk)]
    parts.extend(decoder.flush())
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any, Protocol

from fastreq.backends._common import MAX_CONTENT_ENCODINGS, body_too_large, deliver_chunk
from fastreq.backends.base import RequestConfig
from fastreq.exceptions import ResponseDecodeError

__all__ = [
    "PIECE_SIZE",
    "BoundedDecoder",
    "decoder_for",
    "read_decoded",
    "supported_encodings",
]

#: The largest piece of decoded output the decoder hands out at once.
PIECE_SIZE = 64 * 1024
# zstandard has no output limit: it is fed this many compressed bytes at a time. A zstd
# block regenerates at most 128 KiB from at least 4 bytes (an RLE block), so one call
# yields at most (32 / 4 + 1) * 128 KiB = 1.1 MiB, handed out in PIECE_SIZE slices.
_ZSTD_STEP = 32
_GZIP_MAGIC = b"\x1f\x8b"
_PACKAGES = {"br": ("brotli", "brotlicffi"), "zstd": ("zstandard",)}


class _Truncated(Exception):
    """The compressed stream ended before its end marker."""


class _Stage(Protocol):
    """One coding of the chain: compressed bytes in, bounded pieces out."""

    errors: tuple[type[BaseException], ...]

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


def _split(out: bytes) -> Iterator[bytes]:
    if len(out) <= PIECE_SIZE:
        if out:
            yield out
        return
    view = memoryview(out)
    for start in range(0, len(out), PIECE_SIZE):
        yield bytes(view[start : start + PIECE_SIZE])


class _ZlibStage:
    """gzip (several members allowed) or deflate (zlib header or raw), via ``max_length``."""

    errors: tuple[type[BaseException], ...] = (zlib.error,)

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: Any = None
        self._head = b""  # deflate: the first byte, until the zlib header can be checked
        self._started = False
        self._done = False  # the current stream (gzip member) reached its end
        self._trailing = False  # past the end: the rest is ignored (as urllib3 does)

    def _new_obj(self, data: bytes) -> Any:
        if self._gzip:
            return zlib.decompressobj(31)
        cmf, flg = data[0], data[1]
        is_zlib = cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0
        return zlib.decompressobj(15 if is_zlib else -15)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data or self._trailing:
            return
        if self._obj is None:
            data = self._head + data
            if not self._gzip and len(data) < 2:
                self._head = data
                return
            self._head = b""
            self._obj = self._new_obj(data)
        self._started = True
        obj = self._obj
        while True:
            if self._done:  # more after the end: another gzip member, or trailing garbage
                if not (self._gzip and data[0] == _GZIP_MAGIC[0]):
                    self._trailing = True
                    return
                self._obj = obj = zlib.decompressobj(31)
                self._done = False
            out = obj.decompress(data, PIECE_SIZE)
            if out:
                yield out
            if obj.eof:  # all its output is out once zlib reports the end
                self._done = True
                data = obj.unused_data
                if not data:
                    return
                continue
            data = obj.unconsumed_tail
            if not data and len(out) < PIECE_SIZE:
                return

    def flush(self) -> Iterator[bytes]:
        if self._head or (self._started and not self._done and not self._trailing):
            raise _Truncated()
        return iter(())


class _BrotliStage:
    """br through ``Decompressor.process(..., output_buffer_limit=...)`` (brotli >= 1.2)."""

    def __init__(self, module: ModuleType) -> None:
        self._obj: Any = module.Decompressor()
        self.errors: tuple[type[BaseException], ...] = (getattr(module, "error", ValueError),)
        # Older releases have no output limit: each input chunk is inflated whole there.
        self._bounded = hasattr(self._obj, "can_accept_more_data")
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._started = True
        obj = self._obj
        if not self._bounded:
            yield from _split(obj.process(data))
            return
        out = obj.process(data, output_buffer_limit=PIECE_SIZE)
        # A full buffer may leave output pending even once more input is accepted.
        while len(out) >= PIECE_SIZE or not obj.can_accept_more_data():
            yield from _split(out)
            out = obj.process(b"", output_buffer_limit=PIECE_SIZE)
            if not out and not obj.can_accept_more_data():  # pragma: no cover - no progress
                break
        yield from _split(out)

    def flush(self) -> Iterator[bytes]:
        is_finished = getattr(self._obj, "is_finished", None)
        if self._started and is_finished is not None and not is_finished():
            raise _Truncated()
        return iter(())


class _ZstdStage:
    """zstd through ``zstandard``'s decompressobj, fed :data:`_ZSTD_STEP` bytes at a time."""

    def __init__(self, module: ModuleType) -> None:
        self._dctx: Any = module.ZstdDecompressor()
        self._obj: Any = self._dctx.decompressobj()
        self.errors: tuple[type[BaseException], ...] = (module.ZstdError,)
        self._started = False
        self._done = False  # the current frame is complete

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._started = True
        pending = b""
        pos, size = 0, len(data)
        while pending or pos < size:
            if pending:
                step, pending = pending, b""
            else:
                step = data[pos : pos + _ZSTD_STEP]
                pos += _ZSTD_STEP
            if self._done:  # another frame follows
                self._obj = self._dctx.decompressobj()
                self._done = False
            obj = self._obj
            out = obj.decompress(step)
            if obj.eof:
                self._done = True
                pending = obj.unused_data
            yield from _split(out)

    def flush(self) -> Iterator[bytes]:
        if self._started and not self._done:
            raise _Truncated()
        return iter(())


_MODULES: dict[str, ModuleType | None] = {}


def _module(coding: str) -> ModuleType | None:
    """The decoding package for ``br`` / ``zstd``, imported on first use (``None``: none)."""
    if coding in _MODULES:
        return _MODULES[coding]
    found: ModuleType | None = None
    for name in _PACKAGES[coding]:
        try:
            found = importlib.import_module(name)
            break
        except ImportError:
            continue
    _MODULES[coding] = found
    return found


def supported_encodings() -> tuple[str, ...]:
    """The codings this environment decodes (``br`` / ``zstd`` need their package)."""
    return ("gzip", "x-gzip", "deflate", *(c for c in _PACKAGES if _module(c) is not None))


class _Unsupported(Exception):
    pass


def _stage(coding: str) -> _Stage:
    if coding in ("gzip", "x-gzip"):
        return _ZlibStage(gzip=True)
    if coding == "deflate":
        return _ZlibStage(gzip=False)
    if coding in _PACKAGES:
        module = _module(coding)
        if module is None:
            package = _PACKAGES[coding][0]
            raise _Unsupported(
                f"Content-Encoding {coding!r} needs the {package} package: pip install {package}"
            )
        return _BrotliStage(module) if coding == "br" else _ZstdStage(module)
    raise _Unsupported(f"unsupported Content-Encoding {coding!r}")


class BoundedDecoder:
    """Decodes a ``Content-Encoding`` chain incrementally, ``limit`` bytes at most.

    ``feed(chunk)`` and then ``flush()`` yield the decoded body in pieces of at most
    :data:`PIECE_SIZE` bytes (consume each before the next is made: that is what bounds
    memory). A decoded total over ``limit`` (``None``: no limit), an unknown coding, more
    than five codings, corrupt or truncated data raise
    :class:`~fastreq.exceptions.ResponseDecodeError`; a response without a body (HEAD,
    204, 304) is never an error.
    """

    def __init__(
        self, content_encoding: str, limit: int | None, *, backend_name: str, url: str
    ) -> None:
        self._header = content_encoding
        self._limit = limit
        self._backend_name = backend_name
        self._url = url
        self._size = 0
        self._stages: list[_Stage] = []
        self._error: str | None = None
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > MAX_CONTENT_ENCODINGS:
            self._error = (
                f"more than {MAX_CONTENT_ENCODINGS} chained Content-Encodings: "
                f"{content_encoding!r}"
            )
        else:
            try:
                self._stages = [_stage(c) for c in reversed(codings)]
            except _Unsupported as exc:
                self._error = str(exc)
        self._errors: tuple[type[BaseException], ...] = (
            _Truncated,
            *(e for stage in self._stages for e in stage.errors),
        )

    def _fail(self, message: str) -> ResponseDecodeError:
        return ResponseDecodeError(message, backend_name=self._backend_name, url=self._url)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next chunk of the raw body."""
        if not data:
            return
        if self._error is not None:
            raise self._fail(self._error)
        try:
            yield from self._run(0, data)
        except self._errors as exc:
            raise self._fail(self._describe(exc)) from exc

    def flush(self) -> Iterator[bytes]:
        """What is left once the raw body has ended; fails if the stream is truncated."""
        try:
            for index, stage in enumerate(self._stages):
                for piece in stage.flush():
                    yield from self._run(index + 1, piece)
        except self._errors as exc:
            raise self._fail(self._describe(exc)) from exc

    def _run(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            self._size += len(data)
            if self._limit is not None and self._size > self._limit:
                raise body_too_large(self._limit, self._backend_name, self._url)
            yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._run(index + 1, piece)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, _Truncated):
            return f"truncated body: the Content-Encoding {self._header!r} stream does not end"
        detail = str(exc) or type(exc).__name__
        return f"cannot decode Content-Encoding {self._header!r}: {detail}"


def decoder_for(
    content_encoding: str | None, limit: int | None, *, backend_name: str, url: str
) -> BoundedDecoder | None:
    """A decoder for a response's Content-Encoding header, ``None`` when there is none."""
    if not content_encoding:
        return None
    return BoundedDecoder(content_encoding, limit, backend_name=backend_name, url=url)


async def read_decoded(
    chunks: AsyncIterator[bytes], encoding: str, config: RequestConfig, backend_name: str
) -> bytes:
    """An async backend's body (``chunks``: raw, as received) decoded a bounded piece at a
    time: joined, ``max_body_size`` capping what is held; or, streamed (``config.stream``
    with ``on_chunk``), each piece handed to ``on_chunk`` (then ``b""``)."""
    on_chunk = config.on_chunk if config.stream else None
    limit = config.max_body_size if on_chunk is None else None
    decoder = BoundedDecoder(encoding, limit, backend_name=backend_name, url=config.url)
    if on_chunk is None:
        parts: list[bytes] = []
        async for chunk in chunks:
            parts.extend(decoder.feed(chunk))
        parts.extend(decoder.flush())
        return b"".join(parts)
    async for chunk in chunks:
        for piece in decoder.feed(chunk):
            await deliver_chunk(on_chunk, piece, backend_name, config.url)
    for piece in decoder.flush():
        await deliver_chunk(on_chunk, piece, backend_name, config.url)
    return b""
