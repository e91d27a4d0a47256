"""The resumable journal: each input's outcome in an embedded SQLite file (``journal=``).

Writing is cheap, reading is indexed. While a run goes, outcomes are buffered and written in
batches (every ``BATCH_ROWS`` outcomes, ``BATCH_BYTES`` of bodies or ``BATCH_SECONDS``): one
JSON array per batch, one row of ``pending``, one transaction of a WAL-mode database (far
cheaper than one indexed row per outcome). A process killed with SIGKILL loses at most
the uncommitted tail, which the next run simply fetches again. When a journal is opened,
the pending batches of earlier runs are expanded, in SQL, into ``done``: one row per input
index (url, key, status, ok, error text, attempts, elapsed, value). The view ``outcomes``
shows both. On a re-run with the same input:

- inputs with a row are not fetched; their stored outcomes are returned/yielded again
  (failures too, unless ``retry_failed=True``, which fetches only those again), each once
  its input has been read and matched (so a shorter input never gets extra outcomes);
- the first inputs and the ``return_type`` are checked against what the journal recorded,
  and every skipped input's URL against its row: a journal from another input is a
  :class:`~fastreq.ConfigurationError`, never a silent mix.

Cost (measured, 100,000 outcomes of ~180 bytes, one core): ~0.7 µs of CPU per outcome
all-in, plus ~1.5 ms per run (open, close). Recording runs in the thread that records
(the event loop's): each outcome one tuple appended to the batch (~0.12 µs), each batch
serialized at once and inserted on the journal's connection (:mod:`fastreq._journal_writer`:
no writer thread, whose hand-overs cost more than the writes); only the WAL checkpoints and
the final close, which wait on the disk, run in short-lived threads. Fed by the curl lane,
``request(list, journal=...)`` gets its rows built on the lane's thread and handed over in
bulk (:meth:`Journal.add_rows`, :mod:`fastreq._journal_lane`), a JSON value as the body it
was parsed from (:meth:`Journal.add_json` for a stream's), and a new journal filters nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from fastreq._inputs import BadInput
from fastreq._journal_codec import PLAIN, encode, key_text, key_value, load
from fastreq._journal_writer import Fragment, Writer, connect
from fastreq._models import Request, Result
from fastreq.exceptions import ConfigurationError, FastRequestsError

__all__ = ["HEAD_SIZE", "Journal", "JournaledError", "input_url"]

BATCH_ROWS = 1000
BATCH_SECONDS = 0.5
#: or sooner, once the batch holds this much text or bytes (return_type text, content,
#: response: memory stays bounded whatever the bodies' size)
BATCH_BYTES = 4 << 20
PAGE_SIZE = 16384  # a new journal's: fewer, larger WAL frames per batch (measured)
HEAD_SIZE = 16  # inputs whose fingerprint guards against a journal from another input
_CHUNK = 1000
#: one batch row's array element: [idx, key, url, status, ok, error, attempts, elapsed,
#: kind, value] (value: the JSON value itself for kind "j", else hex text)
_FIELDS = ", ".join(f"e.value ->> {i}" for i in range(9))
_EXPAND = (f"SELECT {_FIELDS}, CASE WHEN e.value ->> 8 = 'j' THEN e.value -> 9 "
           "ELSE e.value ->> 9 END, p.run FROM pending AS p, json_each(p.rows) AS e")
_COLUMNS = "idx, key, url, status, ok, error, attempts, elapsed, kind, value"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS done (
    idx INTEGER PRIMARY KEY, key TEXT, url TEXT NOT NULL, status INTEGER, ok INTEGER NOT NULL,
    error TEXT, attempts INTEGER NOT NULL, elapsed REAL NOT NULL, kind TEXT, value BLOB,
    run INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, run INTEGER NOT NULL,
                                    rows TEXT NOT NULL);
CREATE VIEW IF NOT EXISTS outcomes AS
    SELECT {_COLUMNS}, run FROM done UNION ALL {_EXPAND};
"""


class JournaledError(FastRequestsError):
    """A failure read back from a journal: ``kind`` is the original exception's class name."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


def input_url(item: Any) -> str:
    """The URL an input names (what a journal row is checked against)."""
    if item.__class__ is str:
        return str(item)
    if isinstance(item, (Request, BadInput)):
        return item.url
    return repr(item)


class Journal:
    """One run's view of a journal file; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str], *, return_type: str,
                 retry_failed: bool = False) -> None:
        self.path = os.fspath(path)
        self.retry_failed = retry_failed
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        try:
            self._db = connect(self.path)
            # a new file is set up without fsyncs (a crash then leaves no job to lose)
            self._db.execute(f"PRAGMA synchronous={'OFF' if new else 'NORMAL'}")
            if new:
                self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._setup(return_type)
            self._db.execute("PRAGMA synchronous=NORMAL")
        except BaseException as exc:
            if hasattr(self, "_db"):
                self._db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise ConfigurationError(f"journal {self.path!r} is not usable: {exc}") from exc
            raise
        self._verified = -1  # every done row up to this index matched its input
        self._replayed = -1
        self._rows: list[tuple[Any, ...]] = []
        self._size = 0  # text and bytes values in the batch: their length
        self._last_commit = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._done_queue: list[tuple[int, str]] = []
        self._done_from = 0
        self._done_end = False
        self.skipped = 0
        self._writer = Writer(self.path, self.run, self._db)
        self._lock = self._writer.lock  # reads and writes share the connection

    def _setup(self, return_type: str) -> None:
        """Create (or bring up to date) the tables, expand the pending batches of earlier
        runs, check and count this run: one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'outcomes'").fetchone():  # the one-table format
                db.execute("ALTER TABLE outcomes RENAME TO done")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None:
                db.execute(f"INSERT OR REPLACE INTO done ({_COLUMNS}, run) {_EXPAND} "
                           "ORDER BY p.id, e.key")
                db.execute("DELETE FROM pending")
            self._meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            self._check_meta("return_type", return_type)
            self.run = int(self._meta.get("runs", "0")) + 1  # rows of earlier runs: run < this
            db.execute("INSERT OR REPLACE INTO meta VALUES ('runs', ?)", (str(self.run),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @property
    def recorded(self) -> int:
        """Outcomes committed so far."""
        return self._writer.written

    def _check_meta(self, name: str, value: str) -> None:
        stored = self._meta.get(name)
        if stored is None:
            self._db.execute("INSERT INTO meta VALUES (?, ?)", (name, value))
            self._meta[name] = value
        elif stored != value:
            raise ConfigurationError(
                f"journal {self.path!r} was written with {name}={stored!r}, this run has "
                f"{name}={value!r}: use another journal file for another job"
            )

    # -- before the run ------------------------------------------------------------------
    def check_head(self, head: list[Any]) -> None:
        """Check (or record) the fingerprint of the input's first items."""
        digest = hashlib.sha256()
        for item in head:
            method = item.method if isinstance(item, Request) and item.method else ""
            digest.update(f"{method} {input_url(item)}\n".encode())
        fingerprint = f"{len(head)}:{digest.hexdigest()}"
        stored = self._meta.get("head")
        if stored is not None and stored != fingerprint:
            raise ConfigurationError(
                f"journal {self.path!r} belongs to another input (its first {HEAD_SIZE} "
                "inputs differ from this run's): use another journal file, or delete it to "
                "start over"
            )
        if stored is None:
            self._db.execute("INSERT INTO meta VALUES ('head', ?)", (fingerprint,))
            self._meta["head"] = fingerprint

    def _done_clause(self) -> str:
        return f"run < {self.run}" + (" AND ok = 1" if self.retry_failed else "")

    def replay(self) -> Iterator[Result]:
        """The stored outcomes of inputs pulled (and matched) since the last call."""
        upto = self._verified
        while self._replayed < upto:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM done WHERE idx > ? AND idx <= ? AND "
                    f"{self._done_clause()} ORDER BY idx LIMIT ?",
                    (self._replayed, upto, _CHUNK),
                ).fetchall()
            if not rows:
                self._replayed = upto
                return
            self._replayed = rows[-1][0]
            for row in rows:
                yield _result_from_row(row)

    @property
    def pending_replay(self) -> bool:
        return self._replayed < self._verified

    # -- while pulling inputs ------------------------------------------------------------
    def is_done(self, index: int, item: Any) -> bool:
        """Whether input ``index`` has a stored outcome (then it is not fetched again).

        Inputs are pulled in index order, so this walks the stored rows alongside them
        (a merge join, read in chunks): constant memory whatever the journal's size.
        """
        queue = self._done_queue
        while True:
            while queue and queue[-1][0] < index:
                queue.pop()
            if queue or self._done_end:
                break
            with self._lock:
                rows = self._db.execute(
                    f"SELECT idx, url FROM done WHERE idx >= ? AND {self._done_clause()} "
                    "ORDER BY idx LIMIT ?", (max(index, self._done_from), _CHUNK),
                ).fetchall()
            if len(rows) < _CHUNK:
                self._done_end = True
            if rows:
                self._done_from = rows[-1][0] + 1
            queue[:] = reversed(rows)
        if not queue or queue[-1][0] != index:
            return False
        url = queue.pop()[1]
        if url != input_url(item):
            raise ConfigurationError(
                f"journal {self.path!r} does not match this input: input {index} is "
                f"{input_url(item)!r}, the journal has {url!r} (another job's journal?)"
            )
        self.skipped += 1
        self._verified = index
        return True

    @property
    def _past_done(self) -> bool:
        """Every stored row is behind the inputs pulled: the rest need no look-up."""
        return self._done_end and not self._done_queue

    def filter(self, source: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """The inputs of ``source`` without a stored outcome (all of them, unfiltered, when
        the journal has none: a new job pays nothing per input)."""
        with self._lock:
            stored = self._db.execute(
                f"SELECT 1 FROM done WHERE {self._done_clause()} LIMIT 1").fetchone()
        if stored is None:
            self._done_end = True
            return iter(source)
        return self._filter(iter(source))

    def _filter(self, source: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        is_done = self.is_done
        for indexed in source:
            if not is_done(*indexed):
                yield indexed
            if self._past_done:
                yield from source
                return

    async def afilter(
        self, source: AsyncIterator[tuple[int, Any]]
    ) -> AsyncIterator[tuple[int, Any]]:
        async for indexed in source:
            if not self.is_done(*indexed):
                yield indexed
            if self._past_done:
                break
        async for indexed in source:
            yield indexed

    # -- outcomes ------------------------------------------------------------------------
    def record(self, r: Result) -> None:
        """Buffer one outcome; commit a batch when it is full (or, by a timer, old enough)."""
        self.add(r.index, r.key, r.url, r.status, r.value, r.error, r.attempts, r.elapsed)

    def add(self, index: int, key: Any, url: str, status: int | None, value: Any,
            error: BaseException | None, attempts: int, elapsed: float) -> None:
        """:meth:`record` from the outcome's fields (no :class:`Result` needed)."""
        if key is not None:
            key = key_text(key)
        row: tuple[Any, ...]
        if error is None:
            if value.__class__ in PLAIN:
                row = (index, key, url, status, 1, None, attempts, elapsed, "j", value)
            else:  # text, bytes, a response...: counted, so a batch of bodies stays small
                kind, stored = ("j", value) if value.__class__ is str else encode(value)
                row = (index, key, url, status, 1, None, attempts, elapsed, kind, stored)
                if stored.__class__ is str:
                    self._size += len(stored)
                    if self._size > BATCH_BYTES:
                        self._rows.append(row)
                        self.commit()
                        return
        else:
            text = (str(error) if isinstance(error, JournaledError)
                    else f"{type(error).__name__}: {error}")
            row = (index, key, url, status, 0, text, attempts, elapsed, None, None)
        rows = self._rows
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            self.commit()
        elif self._timer is None:
            self._arm()

    def add_json(self, index: int, key: Any, url: str, status: int | None, body: bytes,
                 attempts: int, elapsed: float) -> None:
        """A success whose value was parsed (by orjson) from the JSON ``body``: recorded as
        that body, not serialized again (replay parses it the same way)."""
        if Fragment is None:  # pragma: no cover - depends on the environment
            raise RuntimeError("add_json needs orjson")
        self.add_rows([(index, None if key is None else key_text(key), url, status, 1, None,
                        attempts, elapsed, "j", Fragment(body))], len(body))

    def add_rows(self, rows: list[tuple[Any, ...]], size: int = 0) -> None:
        """Many rows at once, each as :meth:`add` builds it (``size``: their text/bytes)."""
        buffered = self._rows
        buffered.extend(rows)
        self._size += size
        if len(buffered) >= BATCH_ROWS or self._size > BATCH_BYTES:
            self.commit()
        elif self._timer is None:
            self._arm()

    def _arm(self) -> None:
        """Commit the batch when it is ``BATCH_SECONDS`` old (by age when no loop runs)."""
        loop = asyncio._get_running_loop()  # (None, not an exception: this is per outcome)
        if loop is None:  # no loop to time the batch: commit by age instead
            if time.monotonic() - self._last_commit > BATCH_SECONDS:
                self.commit()
            return
        self._timer = loop.call_later(BATCH_SECONDS, self._commit_later)

    def _commit_later(self) -> None:
        with contextlib.suppress(FastRequestsError):  # kept: raised again by close()
            self.commit()

    def commit(self) -> None:
        """Write the buffered outcomes (one ``pending`` row, one transaction)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_commit = time.monotonic()
        self._size = 0
        if self._rows:
            rows, self._rows = self._rows, []
            self._writer.put(rows)

    def close(self) -> None:
        """Commit everything recorded, close the journal; raise a failed write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._rows = self._rows, []
        self._writer.finish(rows)


def _result_from_row(row: tuple[Any, ...]) -> Result:
    index, key, url, status, ok, error, attempts, elapsed, kind, blob = row
    err = None
    if not ok:
        name = (error or "").partition(":")[0]
        err = JournaledError(error or "failed (no message recorded)", name)
    return Result(index, key_value(key), url, status, load(kind, blob) if ok else None, err,
                  attempts, elapsed, replayed=True)
