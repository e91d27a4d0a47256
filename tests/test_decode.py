"""The bounded Content-Encoding decoder of ``fastreq.backends._decode``."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable

import pytest

from fastreq.backends._decode import PIECE_SIZE, BoundedDecoder, decoder_for, supported_encodings
from fastreq.backends.base import NormalizedResponse
from fastreq.exceptions import ResponseDecodeError

from ._faults import FaultServer, run_one

brotli = pytest.importorskip("brotli")
zstandard = pytest.importorskip("zstandard")

BODY = b"".join(b"line %d of a body that compresses well\n" % i for i in range(20000))


def _deflate_raw(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush()


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as the RFC says
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def _decode(
    header: str, data: bytes | Iterable[bytes], limit: int | None = None, chunk: int = 1000
) -> bytes:
    decoder = BoundedDecoder(header, limit, backend_name="test", url="http://x/")
    chunks = _chunks(data, chunk) if isinstance(data, bytes) else data
    pieces = [piece for c in chunks for piece in decoder.feed(c)]
    pieces.extend(decoder.flush())
    assert all(len(p) <= PIECE_SIZE for p in pieces)
    return b"".join(pieces)


@pytest.mark.parametrize("coding", sorted(COMPRESS))
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_each_encoding_round_trips(coding: str, chunk: int) -> None:
    body = BODY if chunk > 1 else BODY[:3000]  # byte by byte: keep it short
    assert _decode(coding, COMPRESS[coding](body), chunk=chunk) == body


def test_raw_deflate_is_accepted_like_browsers_do() -> None:
    assert _decode("deflate", _deflate_raw(BODY)) == BODY
    assert _decode("deflate", _deflate_raw(b"x"), chunk=1) == b"x"


def test_gzip_members_concatenated_and_trailing_garbage_ignored() -> None:
    data = gzip.compress(b"one ") + gzip.compress(b"two")
    assert _decode("gzip", data, chunk=5) == b"one two"
    assert _decode("gzip", gzip.compress(b"body") + b"\0\0\0") == b"body"


def test_zstd_frames_concatenated() -> None:
    comp = zstandard.ZstdCompressor()
    assert _decode("zstd", comp.compress(b"one ") + comp.compress(b"two"), chunk=3) == b"one two"


def test_chain_is_decoded_last_coding_first() -> None:
    data = BODY
    header = "gzip, deflate, br, zstd, gzip"
    for coding in [c.strip() for c in header.split(",")]:
        data = COMPRESS[coding](data)
    assert _decode(header, data) == BODY
    assert _decode("identity, gzip", gzip.compress(b"ok")) == b"ok"
    assert _decode("identity", b"plain") == b"plain"


def test_six_encodings_are_rejected() -> None:
    data = b"layered"
    for _ in range(6):
        data = gzip.compress(data)
    with pytest.raises(ResponseDecodeError, match="more than 5"):
        _decode(", ".join(["gzip"] * 6), data)


@pytest.mark.parametrize("header", ["compress", "gzip, foo", "bzip2"])
def test_unknown_encoding_is_an_error(header: str) -> None:
    with pytest.raises(ResponseDecodeError, match="unsupported Content-Encoding"):
        _decode(header, b"data")


def test_no_body_is_never_an_error() -> None:
    # HEAD, 204, 304: Content-Encoding without a body
    for header in ["gzip", "br", "zstd", "deflate", "foo", ", ".join(["gzip"] * 6)]:
        assert _decode(header, [b""]) == b""
        assert _decode(header, []) == b""


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_truncated_stream_is_an_error(coding: str) -> None:
    data = COMPRESS[coding](BODY)
    with pytest.raises(ResponseDecodeError, match="truncated"):
        _decode(coding, data[: len(data) // 2])


def test_truncated_deflate_header_is_an_error() -> None:
    with pytest.raises(ResponseDecodeError, match="truncated"):
        _decode("deflate", b"x")


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_corrupt_stream_is_an_error(coding: str) -> None:
    data = bytearray(COMPRESS[coding](BODY))
    data[len(data) // 3 : len(data) // 3 + 40] = bytes(range(40))
    with pytest.raises(ResponseDecodeError) as info:
        _decode(coding, bytes(data))
    assert info.value.backend_name == "test" and info.value.url == "http://x/"


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastreq.backends import _decode as module

    monkeypatch.setitem(module._MODULES, "br", None)
    assert "br" not in supported_encodings()
    with pytest.raises(ResponseDecodeError, match="pip install brotli"):
        _decode("br", b"data")


def test_limit_counts_decoded_bytes() -> None:
    assert _decode("gzip", gzip.compress(BODY), limit=len(BODY)) == BODY
    with pytest.raises(ResponseDecodeError, match=f"{len(BODY) - 1} bytes"):
        _decode("gzip", gzip.compress(BODY), limit=len(BODY) - 1)
    assert _decode("identity", b"12345", limit=5) == b"12345"
    with pytest.raises(ResponseDecodeError, match="4 bytes"):
        _decode("identity", b"12345", limit=4)


BOMB = bytes(64 << 20)
BOMBS: dict[str, Callable[[], bytes]] = {
    "gzip": lambda: gzip.compress(BOMB, 9),
    "deflate": lambda: _deflate_raw(BOMB),
    "br": lambda: brotli.compress(BOMB, quality=5),
    "zstd": lambda: zstandard.ZstdCompressor(level=19).compress(BOMB),
}


@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_bomb_is_decoded_in_bounded_pieces(coding: str) -> None:
    data = BOMBS[coding]()
    decoder = BoundedDecoder(coding, None, backend_name="test", url="u")
    pieces = decoder.feed(data)  # the whole bomb at once, no limit
    total = 0
    for piece in pieces:
        assert len(piece) <= PIECE_SIZE
        total += len(piece)
    for piece in decoder.flush():
        total += len(piece)
    assert total == len(BOMB)


@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_bomb_stops_at_the_limit(coding: str) -> None:
    decoder = BoundedDecoder(coding, 1 << 20, backend_name="test", url="u")
    seen: list[int] = []

    def consume() -> None:
        for piece in decoder.feed(BOMBS[coding]()):
            seen.append(len(piece))

    with pytest.raises(ResponseDecodeError, match="1048576 bytes"):
        consume()
    assert sum(seen) <= 1 << 20


def test_decoder_for_skips_absent_header() -> None:
    assert decoder_for(None, 10, backend_name="t", url="u") is None
    assert decoder_for("", 10, backend_name="t", url="u") is None
    assert isinstance(decoder_for("gzip", 10, backend_name="t", url="u"), BoundedDecoder)


def test_aiohttp_never_offers_what_cannot_be_decoded() -> None:
    pytest.importorskip("aiohttp")
    from aiohttp import hdrs

    from fastreq.backends.aiohttp import _request_class

    cls = _request_class(("gzip", "x-gzip", "deflate"))
    assert cls.DEFAULT_HEADERS[hdrs.ACCEPT_ENCODING] == "gzip, deflate"
    assert cls.DEFAULT_HEADERS[hdrs.ACCEPT] == "*/*"
    everything = _request_class(("gzip", "deflate", "br", "zstd"))
    offered = everything.DEFAULT_HEADERS[hdrs.ACCEPT_ENCODING].split(", ")
    assert set(offered) <= {"gzip", "deflate", "br", "zstd"}


def test_streamed_chunks_are_decoded(backend_name: str, faults: FaultServer) -> None:
    chunks: list[bytes] = []
    out = run_one(
        backend_name, faults.url + "/chain5", stream=True, on_chunk=chunks.append
    )
    assert isinstance(out, NormalizedResponse), repr(out)
    assert out.content == b"" and b"".join(chunks) == b"layered"
    assert out.headers["content-encoding"] == ", ".join(["gzip"] * 5)
