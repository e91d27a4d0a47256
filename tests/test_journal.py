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

import pytest

import fastreq
from fastreq import ConfigurationError, JournaledError, PartialFailureError, fastreq_iter

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
    n = 3000
    script = tmp_path / "job.py"
    script.write_text(PROGRAM)
    journal = tmp_path / "job.db"
    args = [sys.executable, str(script), server.base, str(journal), str(n)]
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = [json.loads(proc.stdout.readline()) for _ in range(400)]
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
