"""Large bodies: ``download_dir=`` (each body to its own file) and ``return_type="stream"``.

Both set ``RequestConfig(stream=True, on_chunk=...)``, so the backend hands the body over in
chunks and never holds it whole.

- ``download_dir="out/"``: input ``i`` is written to ``out/<key>`` when it has a key (made
  safe for a file name), else ``out/<i>``; first to ``<name>.part``, renamed when the input
  succeeds (a failed input leaves no file). The result's value is the file path (``str``).
- ``return_type="stream"`` with ``stream_callback(chunk, index)``: each chunk as it arrives;
  the value is the response without its body (status, headers). Before a retried attempt
  the callback gets an empty chunk ``b""``: drop what that index got so far.

Every attempt of an input starts afresh: the file is truncated, the callback warned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import IO, Any

from fastreq._batch import ConfigFactory, Emit
from fastreq._models import Request
from fastreq.backends.base import Backend, NormalizedResponse, RequestConfig

__all__ = ["RestartingBackend", "StreamCallback", "file_name", "to_callback", "to_files"]

StreamCallback = Callable[[bytes, int], Any]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(index: int, key: Hashable | None) -> str:
    """The file name of input ``index``: its key made safe, else the index."""
    if key is None:
        return str(index)
    name = _UNSAFE.sub("_", str(key)).strip("._")[:150]
    return name or str(index)


class _FileSink:
    """on_chunk for one input: append to ``<path>.part``; rename or delete at the end."""

    __slots__ = ("_fh", "_part", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._fh: IO[bytes] | None = None

    def __call__(self, chunk: bytes) -> None:
        if self._fh is None:
            self._fh = open(self._part, "wb")  # noqa: SIM115 - closed in finish/discard
        self._fh.write(chunk)

    def restart(self) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()

    def finish(self) -> str:
        if self._fh is None:
            self._part.write_bytes(b"")  # an empty body is still a file
        else:
            self._fh.close()
        os.replace(self._part, self.path)
        return str(self.path)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._part.unlink(missing_ok=True)


class _CallbackSink:
    __slots__ = ("_callback", "_index", "_started")

    def __init__(self, callback: StreamCallback, index: int) -> None:
        self._callback = callback
        self._index = index
        self._started = False

    def __call__(self, chunk: bytes) -> Any:
        self._started = True
        return self._callback(chunk, self._index)

    def restart(self) -> None:
        if self._started:
            self._callback(b"", self._index)


class RestartingBackend(Backend):
    """Wraps the client's backend: tells an input's chunk sink when a new attempt starts."""

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self._inner = inner

    @property
    def name(self) -> str:
        return self._inner.name

    async def request(self, config: RequestConfig) -> NormalizedResponse:
        sink = config.on_chunk
        if isinstance(sink, (_FileSink, _CallbackSink)):
            sink.restart()
        return await self._inner.request(config)

    async def close(self) -> None:  # the client closes the real backend
        pass


def _key_of(item: Any, index: int, key_for: Callable[[int], Hashable | None]) -> Any:
    if isinstance(item, Request) and item.key is not None:
        return item.key
    return key_for(index)


def to_files(directory: str | os.PathLike[str], key_for: Callable[[int], Hashable | None]
             ) -> tuple[Callable[[ConfigFactory], ConfigFactory], Callable[[Emit], Emit]]:
    """``(adapt_config, wrap_emit)`` for ``download_dir=directory``."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    sinks: dict[int, _FileSink] = {}

    def adapt(make: ConfigFactory) -> ConfigFactory:
        def make_config(item: Any, index: int) -> RequestConfig:
            config = make(item, index)
            sink = sinks[index] = _FileSink(root / file_name(index, _key_of(item, index, key_for)))
            config.stream = True
            config.on_chunk = sink
            return config

        return make_config

    def wrap(emit: Emit) -> Emit:
        def emit_file(index: int, item: Any, url: str, response: Any, value: Any, error: Any,
                      attempts: int, started: float) -> Any:
            sink = sinks.pop(index, None)
            if sink is not None:
                if error is None:
                    try:
                        value = sink.finish()
                    except OSError as exc:
                        error, value = exc, None
                        sink.discard()
                else:
                    sink.discard()
            return emit(index, item, url, response, value, error, attempts, started)

        return emit_file

    return adapt, wrap


def to_callback(callback: StreamCallback) -> Callable[[ConfigFactory], ConfigFactory]:
    """``adapt_config`` for ``return_type="stream"``."""

    def adapt(make: ConfigFactory) -> ConfigFactory:
        def make_config(item: Any, index: int) -> RequestConfig:
            config = make(item, index)
            config.stream = True
            config.on_chunk = _CallbackSink(callback, index)
            return config

        return make_config

    return adapt
