"""Inputs read lazily: a file of URLs or JSONL request objects, an open file, an async iterator.

A file is read line by line as the workers pull, never whole. One URL per line (blank lines
and ``#`` comments skipped), or one JSON object per line describing a :class:`Request`
(``{"url", "method", "params", "data", "json", "headers", "key"}``); with ``format="auto"``
each line is sniffed (``{`` starts a JSON object). A bad line does not stop the run: it
becomes that input's failure, with the file name and line number in the error.

Example::

    from fastreq import fastreq_iter, from_file

    for r in fastreq_iter(from_file("urls.txt"), concurrency=100):
        print(r.index, r.status)
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from fastreq._models import Request
from fastreq.exceptions import ValidationError
from fastreq.utils.validators import validate_url

__all__ = ["BadInput", "FileInput", "aenumerate", "from_file", "is_async_input", "normalize_input"]

_FORMATS = ("auto", "urls", "jsonl")
_FIELDS = frozenset({"url", "method", "params", "data", "json", "headers", "key"})


class BadInput:
    """A line that could not be read as an input: it fails with ``error`` when pulled."""

    __slots__ = ("error", "url")

    def __init__(self, url: str, error: ValidationError) -> None:
        self.url = url
        self.error = error

    def __repr__(self) -> str:
        return f"<BadInput {self.error}>"


class FileInput:
    """Inputs read lazily from a file path or an open text file (see :func:`from_file`)."""

    def __init__(self, source: str | os.PathLike[str] | Iterable[str], format: str = "auto"
                 ) -> None:
        if format not in _FORMATS:
            raise ValidationError(f"format must be one of {_FORMATS}, got {format!r}")
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ValidationError(f"input file not found: {str(path)!r}")
            if format == "auto" and path.suffix.lower() == ".jsonl":
                format = "jsonl"
            self.name = str(path)
        else:
            self.name = str(getattr(source, "name", "<file>"))
        self._source = source
        self.format = format

    def __iter__(self) -> Iterator[str | Request | BadInput]:
        if isinstance(self._source, (str, os.PathLike)):
            with open(self._source, encoding="utf-8", errors="replace") as fh:
                yield from self._parse(fh)
        else:
            yield from self._parse(self._source)

    def _parse(self, lines: Iterable[str]) -> Iterator[str | Request | BadInput]:
        fmt = self.format
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                if fmt == "jsonl" or (fmt == "auto" and line.startswith("{")):
                    yield _request_from_json(line)
                else:
                    yield validate_url(line)
            except ValidationError as exc:
                shown = line if len(line) <= 200 else line[:200] + "..."
                yield BadInput(shown, ValidationError(f"{self.name}, line {number}: {exc}"))

    def __repr__(self) -> str:
        return f"<FileInput {self.name!r} format={self.format}>"


def from_file(path: str | os.PathLike[str] | Iterable[str], format: str = "auto") -> FileInput:
    """The inputs of a file, read lazily: one URL per line, or JSONL request objects.

    ``format``: ``"urls"``, ``"jsonl"`` or ``"auto"`` (a ``.jsonl`` file is JSONL; otherwise
    a line starting with ``{`` is a JSON request object and any other line a URL). Blank
    lines and ``#`` comments are skipped. ``path`` may also be an open text file (or any
    iterable of lines).

    Example::

        fastreq(from_file("urls.txt"), return_none_on_failure=True)
        # jobs.jsonl: {"url": "https://api/x", "method": "POST", "json": {"a": 1}, "key": "x"}
        for r in fastreq_iter(from_file("jobs.jsonl")):
            ...
    """
    return FileInput(path, format)


def _request_from_json(line: str) -> Request:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"invalid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValidationError(f"a JSON line must be an object, got {type(obj).__name__}")
    unknown = set(obj) - _FIELDS
    if unknown:
        raise ValidationError(
            f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
        )
    if "url" not in obj:
        raise ValidationError('a JSON line needs a "url"')
    validate_url(obj["url"])
    method = obj.get("method")
    if method is not None and not isinstance(method, str):
        raise ValidationError(f'"method" must be a string, got {method!r}')
    for name in ("params", "headers"):
        if obj.get(name) is not None and not isinstance(obj[name], dict):
            raise ValidationError(f'"{name}" must be an object')
    key = obj.get("key")
    if isinstance(key, list):
        key = tuple(key)
    return Request(obj["url"], method, obj.get("params"), obj.get("data"), obj.get("json"),
                   obj.get("headers"), key)


def is_async_input(urls: object) -> bool:
    return isinstance(urls, (AsyncIterable, AsyncIterator))


def normalize_input(urls: Any) -> Any:
    """A path or an open text file becomes a lazy :class:`FileInput`; the rest is as is."""
    if isinstance(urls, os.PathLike):
        return FileInput(urls)
    if isinstance(urls, io.TextIOBase):
        return FileInput(urls)
    return urls


async def aenumerate(items: AsyncIterable[Any]) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1
