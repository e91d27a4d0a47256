"""The journal's writes: one batch of outcomes, one JSON array, one ``pending`` row.

Measured on the benchmark's pinned core, a writer thread cost more than the writes it took
off the loop (handing batches over, waking it, the GIL going back and forth: ~3 µs per
outcome all-in), so a batch is written where it is committed, in the thread that recorded
it (the event loop's, in a run): ``orjson`` serializes the whole batch at once and one
``INSERT`` writes it (one implicit transaction, WAL mode): ~0.5 µs per outcome of ~180
bytes, ~0.5 ms of loop time per 1,000 outcomes. The journal's one connection is used under
:attr:`Writer.lock`, so outcomes may also be recorded from another thread than the reads.

A failed write is kept and raised by the next :meth:`Writer.put` or by
:meth:`Writer.finish` as :class:`~fastreq.FastRequestsError`; the rows of the failed batch
are not recorded (the next run fetches those inputs again). The connection is closed by a
short-lived thread: the last close checkpoints the WAL into the database and syncs both
files, milliseconds of waiting on the disk that the caller need not wait for.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from fastreq.exceptions import FastRequestsError

#: ``Fragment(json_bytes)``: JSON text embedded as it is by ``dumps`` (None: no orjson);
#: ``loads``: the parser replay reads values with (the lane's and the backends' own)
Fragment: Callable[[bytes], Any] | None
loads: Callable[[str], Any]
try:
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
    Fragment = orjson.Fragment
    _orjson_loads: Callable[[str], Any] = orjson.loads

    def loads(text: str) -> Any:
        try:
            return _orjson_loads(text)
        except ValueError:  # e.g. a lone surrogate escape in a text body: json takes it
            return json.loads(text)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()

    Fragment = None
    loads = json.loads


__all__ = ["WAL_BYTES", "Fragment", "Writer", "connect", "dumps_rows", "loads"]

#: WAL bytes between checkpoints: 16 MiB, ~90,000 outcomes of the benchmark's size (each
#: copies the WAL into the database and, with ``synchronous=NORMAL``, syncs both files: in
#: a thread of its own, so the loop never waits on the disk)
WAL_BYTES = 16 << 20
#: each connection's page cache, KiB (SQLite's default: 2,000): the writes append, the reads
#: go by chunks of rows, neither needs more
CACHE_KIB = 512
_INSERT = "INSERT INTO pending (run, rows) VALUES (?, ?)"


def dumps_rows(rows: list[tuple[Any, ...]]) -> str:
    """One JSON array of rows; a value JSON cannot hold is pickled (kind ``P``, hex)."""
    try:
        return _dumps(rows).decode()
    except (TypeError, ValueError, OverflowError):
        return "[" + ",".join(_dump_row(row).decode() for row in rows) + "]"


def _dump_row(row: tuple[Any, ...]) -> bytes:
    try:
        return _dumps(row)
    except (TypeError, ValueError, OverflowError):
        return _dumps([*row[:8], "P", pickle.dumps(row[9]).hex()])


def connect(path: str) -> sqlite3.Connection:
    """A connection of the journal's settings (autocommit; waits out a busy database)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=10000")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return db


class Writer:
    """One journal's writes, on its connection (ended by :meth:`finish`)."""

    def __init__(self, path: str, run: int, db: sqlite3.Connection) -> None:
        self._path = path
        self._run = run
        self._db = db  # the journal's connection (closed by finish())
        db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints: _checkpoint(), off the loop
        self._wal = 0  # bytes written since the last checkpoint began
        self._checkpointing = threading.Event()
        #: held by every use of the connection: outcomes may be recorded from a thread
        #: other than the one reading the journal
        self.lock = threading.Lock()
        self._closed = False
        self.error: BaseException | None = None
        self.written = 0

    def put(self, rows: list[tuple[Any, ...]]) -> None:
        """Write one batch (one transaction); raises if this or an earlier write failed."""
        with self.lock:
            self._raise()
            if self._closed:
                raise FastRequestsError(f"journal {self._path!r} is closed")
            self._write(rows)
            self._raise()

    def finish(self, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows``, close the connections (the final checkpoint); raise a failure."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            if rows and self.error is None:
                self._write(rows)
            threading.Thread(target=_close, args=(self._db,),
                             name="fastreq-journal-close", daemon=True).start()
            self._raise()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            text = dumps_rows(rows)
            self._db.execute(_INSERT, (self._run, text))
        except Exception as exc:  # kept, raised by put() and finish()
            self.error = exc
            return
        self.written += len(rows)
        self._wal += len(text)
        if self._wal >= WAL_BYTES and not self._checkpointing.is_set():
            self._wal = 0
            self._checkpointing.set()
            threading.Thread(target=_checkpoint, args=(self._path, self._checkpointing),
                             name="fastreq-journal-checkpoint", daemon=True).start()

    def _raise(self) -> None:
        if self.error is not None:
            raise FastRequestsError(f"journal {self._path!r}: writing failed: "
                                    f"{self.error}") from self.error


def _close(db: sqlite3.Connection) -> None:
    # a daemon: the interpreter's exit does not wait for it (the outcomes are committed
    # already; an unfinished checkpoint is redone by the next open)
    with contextlib.suppress(sqlite3.Error):
        db.close()


def _checkpoint(path: str, running: threading.Event) -> None:
    """Copy the WAL into the database (and sync both): a passive checkpoint, which neither
    waits for the writes nor holds them up, on its own connection."""
    try:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()
    except sqlite3.Error:
        pass  # the next checkpoint (or the next open) does it
    finally:
        running.clear()
