"""The journal's writer thread: batches of outcomes go to SQLite off the event loop.

The loop thread only appends rows to a list and hands a full batch over (a deque append);
this thread serializes it (one JSON array) and inserts it as one ``pending`` row: a single
statement, so one implicit transaction, on its own connection (SQLite releases the GIL
while it writes, and the WAL checkpoints and their fsyncs happen here too). Batches that
queue up while it writes are joined into the next insert, so it keeps pace however busy
the loop is; past ``MAX_BACKLOG`` rows not yet written, :meth:`Writer.put` waits
(backpressure). :meth:`Writer.finish` returns once every row is committed; the
connections are then closed (the final checkpoint) in this thread, after the caller
has gone on.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from fastreq.exceptions import FastRequestsError

try:
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


__all__ = ["MAX_BACKLOG", "Writer", "dumps_rows"]

MAX_BACKLOG = 50_000  # rows handed over but not yet written, at most


def dumps_rows(rows: list[list[Any]]) -> str:
    """One JSON array of rows; a value JSON cannot hold is pickled (kind ``P``, hex)."""
    try:
        return _dumps(rows).decode()
    except (TypeError, ValueError, OverflowError):
        return "[" + ",".join(_dump_row(row).decode() for row in rows) + "]"


def _dump_row(row: list[Any]) -> bytes:
    try:
        return _dumps(row)
    except (TypeError, ValueError, OverflowError):
        return _dumps([*row[:8], "P", pickle.dumps(row[9]).hex()])


class Writer:
    """One journal's writer thread (started at once, ended by :meth:`finish`)."""

    def __init__(self, path: str, run: int, main_db: sqlite3.Connection) -> None:
        self._path = path
        self._run = run
        self._main_db = main_db  # closed here at the end, so neither close blocks the loop
        self._batches: deque[list[list[Any]] | None] = deque()
        self._cond = threading.Condition()
        self._backlog = 0  # rows handed over, not yet committed
        self._finishing = False  # finish() was called: the loop is done with main_db
        self._done = False  # every row committed (or failed)
        self.error: BaseException | None = None
        self.written = 0
        # a daemon: a journal never closed must not hold the interpreter's exit (what was
        # committed is safe; an unfinished checkpoint is redone by the next open)
        self._thread = threading.Thread(target=self._main, name="fastreq-journal", daemon=True)
        self._thread.start()

    # -- the loop's side -----------------------------------------------------------------
    def put(self, rows: list[list[Any]]) -> None:
        """Hand one batch over; waits only when the writer is ``MAX_BACKLOG`` rows behind."""
        with self._cond:
            self._raise()
            self._batches.append(rows)
            self._backlog += len(rows)
            self._cond.notify_all()
            while self._backlog > MAX_BACKLOG and self.error is None:
                self._cond.wait()
            self._raise()

    def finish(self, rows: list[list[Any]]) -> None:
        """Write ``rows`` and everything handed over; return once committed."""
        with self._cond:
            if rows:
                self._batches.append(rows)
                self._backlog += len(rows)
            self._finishing = True
            self._batches.append(None)
            self._cond.notify_all()
            while not self._done:
                self._cond.wait()
            self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise FastRequestsError(f"journal {self._path!r}: writing failed: "
                                    f"{self.error}") from self.error

    # -- the thread ----------------------------------------------------------------------
    def _main(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            self._loop(db)
        except BaseException as exc:  # handed to the loop thread by put()/finish()
            with self._cond:
                self.error = exc
                self._cond.notify_all()
            self._drain()
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
            for conn in (db, self._main_db):  # finish() was called: the loop is done with it
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):  # nothing left to lose
                        conn.close()

    def _loop(self, db: sqlite3.Connection) -> None:
        while True:
            with self._cond:
                while not self._batches:
                    self._cond.wait()
                taken = list(self._batches)
                self._batches.clear()
            rows = [row for batch in taken if batch is not None for row in batch]
            if rows:
                db.execute("INSERT INTO pending (run, rows) VALUES (?, ?)",
                           (self._run, dumps_rows(rows)))
                with self._cond:
                    self.written += len(rows)
                    self._backlog -= len(rows)
                    self._cond.notify_all()
            if None in taken:
                return

    def _drain(self) -> None:
        """After a failure: drop what comes (refetched next run) until finish() is called."""
        with self._cond:
            while True:
                self._batches.clear()
                self._backlog = 0
                self._cond.notify_all()
                if self._finishing:
                    return
                self._cond.wait()
