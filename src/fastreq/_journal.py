"""The resumable journal: each input's outcome in an embedded SQLite file (``journal=``).

One row per input index (url, key, status, ok, error text, attempts, elapsed, value). Rows
are written in batches (every ``BATCH_ROWS`` outcomes or ``BATCH_SECONDS``), each batch in
one transaction of a WAL-mode database: a process killed with SIGKILL loses at most the
uncommitted tail, which the next run simply fetches again. On a re-run with the same input:

- inputs with a row are not fetched; their stored outcomes are returned/yielded again
  (failures too, unless ``retry_failed=True``, which fetches only those again), each once
  its input has been read and matched (so a shorter input never gets extra outcomes);
- the first inputs and the ``return_type`` are checked against what the journal recorded,
  and every skipped input's URL against its row: a journal from another input is a
  :class:`~fastreq.ConfigurationError`, never a silent mix.

All of it runs on the event loop thread (one connection, no locks needed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from fastreq._inputs import BadInput
from fastreq._models import Request, Result
from fastreq.backends.base import NormalizedResponse
from fastreq.exceptions import ConfigurationError, FastRequestsError

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


__all__ = ["HEAD_SIZE", "Journal", "JournaledError", "input_url"]

BATCH_ROWS = 200
BATCH_SECONDS = 0.5
HEAD_SIZE = 16  # inputs whose fingerprint guards against a journal from another input
_CHUNK = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    idx INTEGER PRIMARY KEY, key TEXT, url TEXT NOT NULL, status INTEGER, ok INTEGER NOT NULL,
    error TEXT, attempts INTEGER NOT NULL, elapsed REAL NOT NULL, kind TEXT, value BLOB,
    run INTEGER NOT NULL
);
"""
_COLUMNS = "idx, key, url, status, ok, error, attempts, elapsed, kind, value"


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
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"journal {self.path!r} is not usable: {exc}") from exc
        self._meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        self._check_meta("return_type", return_type)
        self.run = int(self._meta.get("runs", "0")) + 1  # rows of earlier runs: run < this
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('runs', ?)", (str(self.run),))
        self._verified = -1  # every done row up to this index matched its input
        self._replayed = -1
        self._rows: list[tuple[Any, ...]] = []
        self._last_commit = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._done_queue: list[tuple[int, str]] = []
        self._done_from = 0
        self._done_end = False
        self.recorded = 0
        self.skipped = 0

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
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outcomes WHERE idx > ? AND idx <= ? AND "
                f"{self._done_clause()} ORDER BY idx LIMIT ?", (self._replayed, upto, _CHUNK),
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
            rows = self._db.execute(
                f"SELECT idx, url FROM outcomes WHERE idx >= ? AND {self._done_clause()} "
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

    def filter(self, source: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        is_done = self.is_done
        for indexed in source:
            if not is_done(*indexed):
                yield indexed

    async def afilter(
        self, source: AsyncIterator[tuple[int, Any]]
    ) -> AsyncIterator[tuple[int, Any]]:
        async for indexed in source:
            if not self.is_done(*indexed):
                yield indexed

    # -- outcomes ------------------------------------------------------------------------
    def record(self, r: Result) -> None:
        """Buffer one outcome; commit a batch when it is full or old enough."""
        if r.error is None:
            kind, value = _dump(r.value)
            error = None
        else:
            kind, value = None, None
            error = f"{type(r.error).__name__}: {r.error}"
            if isinstance(r.error, JournaledError):
                error = str(r.error)
        self._rows.append((r.index, _key_text(r.key), r.url, r.status, r.error is None, error,
                           r.attempts, r.elapsed, kind, value, self.run))
        if len(self._rows) >= BATCH_ROWS or time.monotonic() - self._last_commit > BATCH_SECONDS:
            self.commit()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(BATCH_SECONDS, self.commit)

    def commit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_commit = time.monotonic()
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                f"INSERT OR REPLACE INTO outcomes ({_COLUMNS}, run) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.recorded += len(rows)

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()


def _key_text(key: Any) -> str | None:
    if key is None:
        return None
    try:
        return json.dumps(key)
    except (TypeError, ValueError):
        return repr(key)


def _key_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        key = json.loads(text)
    except ValueError:
        return text
    return tuple(key) if isinstance(key, list) else key


def _dump(value: Any) -> tuple[str, bytes | None]:
    if value is None:
        return "n", None
    if isinstance(value, bytes):
        return "b", value
    if isinstance(value, str):
        return "s", value.encode()
    if isinstance(value, NormalizedResponse):
        return "r", pickle.dumps((value.status_code, value.header_items, value.content,
                                  value.url, value.http_version, value.elapsed))
    try:
        return "j", _dumps(value)
    except (TypeError, ValueError):
        return "p", pickle.dumps(value)


def _load(kind: str | None, blob: bytes | None) -> Any:
    if kind == "b":
        return bytes(blob or b"")
    if kind == "s":
        return (blob or b"").decode()
    if kind == "j":
        return json.loads(blob or b"null")
    if kind == "r":
        status, items, content, url, version, elapsed = pickle.loads(blob or b"")
        return NormalizedResponse(status, items, content, url=url, http_version=version,
                                  elapsed=elapsed)
    if kind == "p":
        return pickle.loads(blob or b"")
    return None


def _result_from_row(row: tuple[Any, ...]) -> Result:
    index, key, url, status, ok, error, attempts, elapsed, kind, blob = row
    err = None
    if not ok:
        name = (error or "").partition(":")[0]
        err = JournaledError(error or "failed (no message recorded)", name)
    return Result(index, _key_value(key), url, status, _load(kind, blob) if ok else None, err,
                  attempts, elapsed, replayed=True)
