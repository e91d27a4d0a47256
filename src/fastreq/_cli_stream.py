"""``fastreq fetch`` on the streaming API: one JSON line per input, written as it completes.

Inputs are read lazily (a file or stdin, through :func:`~fastreq.from_file`), results come
from :meth:`FastRequests.stream` on a background loop (``iterate_in_thread``: a bounded
hand-off, so a slow writer slows the fetching instead of filling memory), and each result is
written out at once. Memory stays flat whatever the number of inputs; with ``journal`` a
re-run after a crash replays the stored outcomes and fetches only the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fastreq._cli_fetch import Tally
from fastreq._inputs import FileInput
from fastreq._iter import Handoff, iterate_in_thread
from fastreq._models import Result
from fastreq.client import FastRequests

__all__ = [
    "NamedLines", "StreamSummary", "count_inputs", "result_line", "stream_fetch",
]

#: Write the output file at least this often (a killed run leaves its lines on disk).
FLUSH_SECONDS = 0.2


class NamedLines:
    """Lines of an open text stream, named for error messages (``"stdin, line 3: ..."``)."""

    def __init__(self, lines: Iterable[str], name: str) -> None:
        self._lines = lines
        self.name = name

    def __iter__(self) -> Iterator[str]:
        return iter(self._lines)


def count_inputs(path: str) -> int | None:
    """How many inputs a file holds (non-blank, non-comment lines), for the progress bar."""
    count = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.strip()
                if line and not line.startswith(b"#"):
                    count += 1
    except OSError:
        return None
    return count


@dataclass
class StreamSummary:
    """What a streamed fetch did: the tally, retries, replayed outcomes, timing, backend."""

    backend: str = "?"
    tally: Tally = field(default_factory=Tally)
    retries: int = 0
    replayed: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def text(self) -> str:
        tally = self.tally
        fetched = tally.total - self.replayed
        rate = fetched / self.seconds if self.seconds > 0 else 0.0
        parts = [
            f"fastreq: {tally.total} URLs in {self.seconds:.2f} s ({rate:,.0f}/s) with "
            f"{self.backend}: {tally.succeeded} ok, {tally.failed} failed",
            f"statuses {tally.status_text()}",
        ]
        if tally.failed:
            parts.append(f"errors {tally.error_text()}")
        parts.append(f"retries {self.retries}")
        if self.replayed:
            parts.append(f"{self.replayed} replayed from the journal")
        return "; ".join(parts)


def _error_text(error: BaseException) -> str:
    from fastreq._journal import JournaledError

    if isinstance(error, JournaledError):  # already "Kind: message"
        return str(error)
    return f"{type(error).__name__}: {error}"


def result_line(r: Result, *, body: bool, download: bool) -> dict[str, Any]:
    """The JSON line of one result."""
    line: dict[str, Any] = {
        "index": r.index,
        "url": r.url,
        "status": r.status,
        "elapsed": round(r.elapsed, 6),
        "attempts": r.attempts,
        "error": _error_text(r.error) if r.error is not None else None,
    }
    if download:
        line["path"] = r.value if r.error is None else None
    else:
        line["body"] = r.value if (body and r.error is None) else None
    line["replayed"] = r.replayed
    return line


def _results(source: FileInput, client_options: dict[str, Any],
             stream_options: dict[str, Any], summary: StreamSummary
             ) -> Generator[Result, None, None]:
    async def main(handoff: Handoff) -> None:
        async with FastRequests(**client_options) as client:
            summary.backend = client.backend.name
            results = client.stream(source, **stream_options)
            async with contextlib.aclosing(results):
                async for result in results:
                    await handoff.put(result)

    return iterate_in_thread(main)


class _Bar:
    """A tqdm bar on stderr: done, rate, errors, ETA (when the total is known)."""

    def __init__(self, total: int | None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="req", desc="fastreq", dynamic_ncols=True,
                         smoothing=0.1, mininterval=0.2)
        self._pending = 0
        self._last = 0.0

    def update(self, errors: int) -> None:
        self._pending += 1
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self._bar.set_postfix(errors=errors, refresh=False)
            self._bar.update(self._pending)
            self._pending = 0

    def close(self, errors: int) -> None:
        self._bar.set_postfix(errors=errors, refresh=False)
        self._bar.update(self._pending)
        self._pending = 0
        self._bar.close()


def stream_fetch(source: FileInput, out: IO[bytes], client_options: dict[str, Any],
                 stream_options: dict[str, Any], *, body: bool = True,
                 progress_total: int | None = None, progress: bool = False) -> StreamSummary:
    """Fetch every input of ``source``; write each result's JSON line to ``out`` at once.

    Raises what the run raises (bad options: :class:`~fastreq.ValidationError` /
    :class:`~fastreq.ConfigurationError`); ``KeyboardInterrupt`` ends the run early with
    ``summary.interrupted`` set (what was written stays written, the journal is committed).
    """
    summary = StreamSummary()
    tally = summary.tally
    download = stream_options.get("download_dir") is not None
    bar = _Bar(progress_total) if progress else None
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    write = out.write
    started = time.perf_counter()
    last_flush = started
    results = _results(source, client_options, stream_options, summary)
    try:
        for r in results:
            write(dumps(result_line(r, body=body, download=download)).encode(
                "utf-8", errors="replace") + b"\n")
            tally.add_outcome(r.status, r.error)
            if r.replayed:
                summary.replayed += 1
            elif r.attempts > 1:
                summary.retries += r.attempts - 1
            if bar is not None:
                bar.update(tally.failed)
            now = time.perf_counter()
            if now - last_flush >= FLUSH_SECONDS:
                last_flush = now
                out.flush()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        results.close()
        summary.seconds = time.perf_counter() - started
        if bar is not None:
            bar.close(tally.failed)
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return summary


def stdin_input() -> FileInput:
    """stdin, read lazily line by line (UTF-8), as inputs named ``stdin``."""
    import io
    import sys

    wrapper = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    return FileInput(NamedLines(wrapper, "stdin"), "auto")


def file_input(path: str) -> FileInput:
    return FileInput(os.fspath(path), "auto")
