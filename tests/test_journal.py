"""The resumable journal: kill -9 and resume, exactly once; retry_failed; wrong-journal guard."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fastreq
from fastreq import ConfigurationError, JournaledError, PartialFailureError, fastreq_iter
from fastreq._journal import BATCH_ROWS
from fastreq.testing import MockBackend, make_response

from ._server import TestServer

PROGRAM = textwrap.dedent("""
    import json, sys
    from fastreq import fastreq_iter

    base, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    urls = (f"{base}/json/{i}" for i in range(n))
    for r in fastreq_iter(urls, backend="aiohttp", concurrency=8, journal=journal):
        print(json.dumps({"index": r.index, "ok": r.ok, "value": r.value,
                          "replayed": r.replayed}), flush=True)
""")


def _committed(journal: Path) -> set[int]:
    db = sqlite3.connect(journal)
    try:
        return {row[0] for row in db.execute("SELECT idx FROM outcomes")}
    finally:
        db.close()


def test_kill_9_mid_run_then_resume_exactly_once(server: TestServer, tmp_path: Path) -> None:
    n = 5000
    script = tmp_path / "job.py"
    script.write_text(PROGRAM)
    journal = tmp_path / "job.db"
    args = [sys.executable, str(script), server.base, str(journal), str(n)]
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    # past the first batch (BATCH_ROWS outcomes): at least one is committed when killed
    first = [json.loads(proc.stdout.readline()) for _ in range(BATCH_ROWS + 500)]
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the pipe throttles it well before the end
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    done = _committed(journal)
    assert 0 < len(done) < n
    assert {r["index"] for r in first} <= set(range(n))

    server.reset()
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True, timeout=60)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert Counter(r["index"] for r in rows) == Counter(range(n))  # every input exactly once
    assert all(r["ok"] and r["value"] == {"n": r["index"]} for r in rows)
    assert {r["index"] for r in rows if r["replayed"]} == done
    fetched = Counter(int(h.path.rsplit("/", 1)[1]) for h in server.hits_for("/json/"))
    assert set(fetched) == set(range(n)) - done  # done inputs were not fetched again
    assert set(fetched.values()) == {1}
    assert len(_committed(journal)) == n


def test_rerun_returns_stored_results_without_fetching(server: TestServer,
                                                       tmp_path: Path) -> None:
    urls = [server.url(f"/json/{i}") for i in range(50)]
    journal = tmp_path / "j.db"
    first = fastreq.fastreq(urls, backend="aiohttp", journal=journal)
    assert len(server.hits) == 50
    server.reset()
    assert fastreq.fastreq(urls, backend="aiohttp", journal=journal) == first
    assert server.hits == []
    # a shorter input (same head) gets only its own outcomes, never extra ones
    assert len(list(fastreq_iter(urls[:20], backend="aiohttp", journal=journal))) == 20


@pytest.mark.parametrize("return_type", ["json", "text", "content", "response"])
def test_values_survive_the_journal(server: TestServer, tmp_path: Path,
                                    return_type: str) -> None:
    urls = [server.url("/json"), server.url("/text"), server.url("/bytes/3")]
    journal = tmp_path / "j.db"
    first = {r.index: r for r in fastreq_iter(urls, backend="aiohttp", journal=journal,
                                              return_type=return_type)}
    again = {r.index: r for r in fastreq_iter(urls, backend="aiohttp", journal=journal,
                                              return_type=return_type)}
    for i in range(3):
        assert again[i].replayed and again[i].status == first[i].status
        if return_type == "response":
            assert again[i].value.content == first[i].value.content
            assert again[i].value.headers == first[i].value.headers
        else:
            assert again[i].value == first[i].value


def test_failures_replay_or_retry_failed(server: TestServer, tmp_path: Path,
                                         refused_url: str) -> None:
    urls = [server.url("/json/0"), server.url("/flaky/rf/1"), refused_url]
    journal = tmp_path / "j.db"
    options = {"backend": "aiohttp", "journal": journal, "max_retries": 0}
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(urls, **options)  # type: ignore[arg-type]
    assert [f.index for f in info.value.failures] == [1, 2]
    hits = len(server.hits)  # (no reset: the flaky route counts its hits)
    again = {r.index: r for r in fastreq_iter(urls, **options)}  # type: ignore[arg-type]
    assert len(server.hits) == hits  # failures are outcomes too: replayed, not fetched
    assert isinstance(again[1].error, JournaledError) and again[1].status == 503
    assert again[1].error.kind == "RetryExhaustedError"
    assert again[2].error is not None and again[2].replayed
    retried = {r.index: r for r in fastreq_iter(urls, retry_failed=True, **options)}  # type: ignore[arg-type]
    assert sorted(retried) == [0, 1, 2]
    assert retried[0].replayed and not retried[1].replayed and retried[1].value == {"hits": 2}
    assert [h.path for h in server.hits[hits:]] == ["/flaky/rf/1"]  # refused: no hit
    assert not retried[2].ok and not retried[2].replayed


def test_journal_of_another_input_is_refused(server: TestServer, tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    fastreq.fastreq([server.url(f"/json/{i}") for i in range(30)], backend="aiohttp",
                    journal=journal)
    server.reset()
    with pytest.raises(ConfigurationError, match="another input"):
        fastreq.fastreq([server.url(f"/json/{i}") for i in range(1, 31)], backend="aiohttp",
                        journal=journal)
    with pytest.raises(ConfigurationError, match="return_type"):
        fastreq.fastreq([server.url(f"/json/{i}") for i in range(30)], backend="aiohttp",
                        journal=journal, return_type="text")
    changed = [server.url(f"/json/{i}") for i in range(30)]
    changed[25] = server.url("/json/99")
    with pytest.raises(ConfigurationError, match="input 25"):
        fastreq.fastreq(changed, backend="aiohttp", journal=journal)
    with pytest.raises(ConfigurationError, match="needs journal"):
        fastreq.fastreq(changed, backend="aiohttp", retry_failed=True)
    (tmp_path / "junk.db").write_text("not a database" * 100)
    with pytest.raises(ConfigurationError, match="not usable"):
        fastreq.fastreq(changed, backend="aiohttp", journal=tmp_path / "junk.db")


def _echo_backend() -> MockBackend:
    return MockBackend(lambda cfg: make_response(json={"url": cfg.url}))


@pytest.mark.parametrize("parse", [
    lambda v: {1: v["url"]},  # int keys: not JSON
    lambda v: {v["url"], "x"},  # a set
    lambda v: v["url"].encode(),  # bytes
    lambda v: ("t", 2**70, float("inf")),  # a tuple, a big int, inf
    lambda v: "\ud800 lone surrogate",  # not UTF-8 encodable
])
def test_any_picklable_value_survives_the_journal(tmp_path: Path, parse: Any) -> None:
    urls = [f"http://h/{i}" for i in range(5)]
    journal = tmp_path / "j.db"
    first = fastreq.fastreq(urls, backend=_echo_backend(), journal=journal, parse_func=parse)
    again = fastreq.fastreq(urls, backend=MockBackend(_never), journal=journal,
                            parse_func=parse)
    assert again == first
    if isinstance(first[0], tuple):
        assert isinstance(again[0], tuple)


def _never(config: Any) -> Any:
    raise AssertionError(f"{config.url} fetched again")


def test_batches_are_expanded_into_one_row_per_input(tmp_path: Path) -> None:
    urls = [f"http://h/{i}" for i in range(450)]
    journal = tmp_path / "j.db"
    fastreq.fastreq(urls, backend=_echo_backend(), journal=journal)
    db = sqlite3.connect(journal)
    try:  # written as a few batches; the view shows one row per input already
        assert 0 < db.execute("SELECT count(*) FROM pending").fetchone()[0] <= 3
        assert db.execute("SELECT count(*) FROM done").fetchone()[0] == 0
        assert [r[0] for r in db.execute("SELECT idx FROM outcomes ORDER BY idx")] == list(
            range(450))
    finally:
        db.close()
    values = fastreq.fastreq(urls, backend=MockBackend(_never), journal=journal)
    assert values == [{"url": u} for u in urls]
    db = sqlite3.connect(journal)
    try:  # the next run expanded them into done, indexed by input
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
        assert db.execute("SELECT count(*), min(idx), max(idx) FROM done").fetchone() == (
            450, 0, 449)
    finally:
        db.close()


def test_journal_of_the_one_table_format_is_read(tmp_path: Path) -> None:
    journal = tmp_path / "old.db"
    urls = [f"http://h/{i}" for i in range(3)]
    db = sqlite3.connect(journal)
    db.executescript("""
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE outcomes (
            idx INTEGER PRIMARY KEY, key TEXT, url TEXT NOT NULL, status INTEGER,
            ok INTEGER NOT NULL, error TEXT, attempts INTEGER NOT NULL, elapsed REAL NOT NULL,
            kind TEXT, value BLOB, run INTEGER NOT NULL);
        INSERT INTO meta VALUES ('return_type', 'json'), ('runs', '1');
    """)
    db.executemany("INSERT INTO outcomes VALUES (?,?,?,?,?,?,?,?,?,?,?)", [
        (0, None, urls[0], 200, 1, None, 1, 0.1, "j", b'{"n":0}', 1),
        (1, None, urls[1], 200, 1, None, 1, 0.1, "s", b"text", 1),
        (2, None, urls[2], 200, 1, None, 1, 0.1, "b", b"\x00", 1),
    ])
    db.commit()
    db.close()
    assert fastreq.fastreq(urls, backend=MockBackend(_never), journal=journal) == [
        {"n": 0}, "text", b"\x00"]


def test_a_failed_write_is_raised_not_lost_silently(tmp_path: Path) -> None:
    from fastreq._journal import Journal
    from fastreq._models import Result

    path = tmp_path / "j.db"
    journal = Journal(path, return_type="json")
    other = sqlite3.connect(path)
    other.execute("DROP VIEW outcomes")
    other.execute("DROP TABLE pending")  # the writer's insert now fails
    other.commit()
    other.close()
    journal.record(Result(0, None, "http://h/0", 200, {"a": 1}, None, 1, 0.1))
    with pytest.raises(fastreq.FastRequestsError, match="writing failed"):
        journal.close()


def _outcome(journal: Any, i: int) -> None:
    journal.add(i, None, f"http://h/{i}", 200, {"n": i}, None, 1, 0.01)


def test_outcomes_recorded_off_the_loop_are_committed_and_read_back(tmp_path: Path) -> None:
    import threading

    from fastreq._journal import Journal

    path = tmp_path / "j.db"
    journal = Journal(path, return_type="json")
    worker = threading.Thread(target=lambda: [_outcome(journal, i) for i in range(2500)])
    worker.start()  # no event loop in that thread: batches are committed by size (or age)
    worker.join()
    assert journal.recorded == 2 * BATCH_ROWS  # the tail waits for close()
    journal.close()
    assert _committed(path) == set(range(2500))
    again = Journal(path, return_type="json")
    try:
        urls = [(i, f"http://h/{i}") for i in range(2600)]
        assert [i for i, _ in again.filter(urls)] == list(range(2500, 2600))
        stored = list(again.replay())
        assert [r.index for r in stored] == list(range(2500))
        assert all(r.value == {"n": r.index} and r.replayed for r in stored)
    finally:
        again.close()


def test_wal_checkpoints_run_beside_the_writes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from fastreq import _journal_writer
    from fastreq._journal import Journal

    monkeypatch.setattr(_journal_writer, "WAL_BYTES", 1)  # a checkpoint after each batch
    path = tmp_path / "j.db"
    journal = Journal(path, return_type="json")
    for i in range(3 * BATCH_ROWS):
        _outcome(journal, i)
        if i % BATCH_ROWS == BATCH_ROWS - 1:  # let each batch's checkpoint finish
            for t in threading.enumerate():
                if t.name == "fastreq-journal-checkpoint":
                    t.join()
    # in WAL mode the database file grows only by checkpoints: the journal is not closed yet
    assert os.path.getsize(path) > 3 * BATCH_ROWS * 20
    journal.close()
    assert _committed(path) == set(range(3 * BATCH_ROWS))


def test_a_failed_timed_commit_is_raised_by_close(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from fastreq import _journal
    from fastreq._journal import Journal

    monkeypatch.setattr(_journal, "BATCH_SECONDS", 0.01)
    path = tmp_path / "j.db"

    async def run() -> Journal:
        journal = Journal(path, return_type="json")
        other = sqlite3.connect(path)
        other.execute("DROP VIEW outcomes")
        other.execute("DROP TABLE pending")
        other.commit()
        other.close()
        _outcome(journal, 0)  # one outcome: only the timer commits it
        for _ in range(500):
            await asyncio.sleep(0.01)
            if journal._writer.error is not None:
                break
        return journal

    journal = asyncio.run(run())
    assert journal.recorded == 0
    with pytest.raises(fastreq.FastRequestsError, match="writing failed"):
        journal.close()


def test_large_bodies_are_committed_before_a_batch_fills(tmp_path: Path) -> None:
    from fastreq._journal import BATCH_BYTES, Journal

    journal = Journal(tmp_path / "j.db", return_type="content")
    body = b"x" * (BATCH_BYTES // 4)  # stored as hex: half a batch's bytes each
    for i in range(5):
        journal.add(i, None, f"http://h/{i}", 200, body, None, 1, 0.01)
    assert 0 < journal.recorded < 5  # bounded by size, not by BATCH_ROWS outcomes
    journal.close()
    assert _committed(tmp_path / "j.db") == set(range(5))
