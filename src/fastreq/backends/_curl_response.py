"""Responses from libcurl's raw header lines, with header parsing deferred to first use.

Parsing and lower-casing a typical header block costs ~4 µs of Python per response, more than
a tenth of a small request's whole cost; many callers only read the status and the body. So
:class:`CurlResponse` (a :class:`NormalizedResponse` in every respect) keeps the raw header
block and fills ``header_items`` / ``headers`` the first time either is read. When the base
class does not store them as plain slots (its layout changed), responses are built eagerly
instead, which is always correct.
"""

from __future__ import annotations

from fastreq.backends._lazy_response import HEADERS as _HEADERS
from fastreq.backends._lazy_response import ITEMS as _ITEMS
from fastreq.backends._lazy_response import LAZY, assemble
from fastreq.backends.base import NormalizedResponse

__all__ = ["CurlResponse", "make_response", "parse_header_block"]

_VERSIONS = {
    b"HTTP/1.1": "HTTP/1.1", b"HTTP/2": "HTTP/2", b"HTTP/3": "HTTP/3", b"HTTP/1.0": "HTTP/1.0",
}


def last_block(hdrs: list[bytes]) -> tuple[bytes, str | None, bool]:
    """The final response's header block, its HTTP version (``"HTTP/2"``...) and whether
    other responses came before it.

    libcurl hands over every header line it received: redirect responses, 1xx interim
    responses and a proxy's CONNECT reply come before the final response's status line.
    """
    blob = b"".join(hdrs)
    start = blob.rfind(b"\nHTTP/") + 1
    if start:
        blob = blob[start:]
    version = blob[: blob.find(b" ")]
    return blob, _VERSIONS.get(version) or version.decode("latin-1") or None, start > 0


def parse_header_block(blob: bytes) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(items, joined)``: lower-cased ``(name, value)`` pairs in order, and a dict with
    repeated names joined by ``", "`` (exactly what :class:`NormalizedResponse` keeps).

    Lines end at every LF, as libcurl splits them (a bare LF inside a value such as
    ``a\nInjected: yes`` makes two header lines there too, never a value holding a line
    break); libcurl itself rejects a bare CR or a NUL in a header."""
    try:
        text = blob.decode()
    except UnicodeDecodeError:
        text = blob.decode("latin-1")
    items: list[tuple[str, str]] = []
    joined: dict[str, str] = {}
    for line in text.split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            name = name.strip().lower()
            value = value.strip()
            items.append((name, value))
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        elif not line or line == "\r":
            break  # end of the header block (chunked trailers may follow)
        elif line[0] in " \t" and items:  # obsolete line folding: continues the last value
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            joined[name] = f"{joined[name]} {line.strip()}"
    return items, joined


class CurlResponse(NormalizedResponse):
    """A :class:`NormalizedResponse` whose headers are parsed on first access."""

    __slots__ = ("_raw_headers",)
    _raw_headers: bytes

    def _parse(self) -> None:
        items, joined = parse_header_block(self._raw_headers)
        _ITEMS.__set__(self, items)
        _HEADERS.__set__(self, joined)
        self._raw_headers = b""

    @property
    def header_items(self) -> list[tuple[str, str]]:
        try:
            value: list[tuple[str, str]] = _ITEMS.__get__(self, CurlResponse)
        except AttributeError:
            self._parse()
            value = _ITEMS.__get__(self, CurlResponse)
        return value

    @header_items.setter
    def header_items(self, value: list[tuple[str, str]]) -> None:
        _ITEMS.__set__(self, value)

    def has_header(self, name: str) -> bool:
        raw = self._raw_headers
        if raw:  # not parsed yet: a scan of the raw block is far cheaper than parsing it
            return f"\n{name}:".encode("latin-1") in raw.lower()
        return name in self.headers

    @property
    def headers(self) -> dict[str, str]:
        try:
            value: dict[str, str] = _HEADERS.__get__(self, CurlResponse)
        except AttributeError:
            self._parse()
            value = _HEADERS.__get__(self, CurlResponse)
        return value

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        _HEADERS.__set__(self, value)


def make_response(
    status: int,
    blob: bytes,
    content: bytes,
    url: str,
    is_json: bool,
    http_version: str | None,
    elapsed: float,
    *,
    lazy: bool = LAZY,
) -> NormalizedResponse:
    """A response for the final header block ``blob`` (see :func:`last_block`)."""
    if lazy:
        r = assemble(CurlResponse, status, content, url, is_json, http_version, elapsed)
        r._raw_headers = blob
        return r
    items, _ = parse_header_block(blob)
    return NormalizedResponse(
        status, items, content, url=url, is_json=is_json, http_version=http_version,
        elapsed=elapsed,
    )
