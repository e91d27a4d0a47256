"""Inputs read lazily: from_file() (URLs, JSONL requests), paths, open files, bad lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastreq
from fastreq import ValidationError, fastreq_iter, from_file

from ._server import TestServer


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_url_file_skips_blanks_and_comments(server: TestServer, tmp_path: Path) -> None:
    path = _write(tmp_path / "urls.txt", [
        "# my job", server.url("/json/0"), "", "   ", f"  {server.url('/json/1')}  ",
        "#" + server.url("/json/9"), server.url("/json/2"),
    ])
    assert fastreq.fastreq(from_file(path), backend="aiohttp") == [{"n": i} for i in range(3)]
    assert fastreq.fastreq(path, backend="aiohttp") == [{"n": i} for i in range(3)]  # a Path
    with open(path) as fh:  # an open text file
        assert sorted(r.index for r in fastreq_iter(fh, backend="aiohttp")) == [0, 1, 2]


def test_bad_line_fails_that_input_only(server: TestServer, tmp_path: Path) -> None:
    path = _write(tmp_path / "urls.txt", [
        server.url("/json/0"), "not a url", "ftp://x/y", server.url("/json/1"),
        '{"url": 5}', "{broken json",
    ])
    by_index = {r.index: r for r in fastreq_iter(from_file(path), backend="aiohttp")}
    assert sorted(by_index) == [0, 1, 2, 3, 4, 5]
    assert by_index[0].value == {"n": 0} and by_index[3].value == {"n": 1}
    for index, line in [(1, 2), (2, 3), (4, 5), (5, 6)]:
        error = by_index[index].error
        assert isinstance(error, ValidationError)
        assert f"urls.txt, line {line}:" in str(error)
    assert by_index[1].url == "not a url"
    assert len(server.hits) == 2


def test_jsonl_request_objects(server: TestServer, tmp_path: Path) -> None:
    lines = [
        {"url": server.url("/echo"), "method": "POST", "json": {"a": 1}, "key": "post"},
        {"url": server.url("/echo"), "params": {"q": "x"}, "headers": {"X-T": "1"}, "key": "get"},
        {"url": server.url("/echo"), "data": "raw", "method": "PUT", "key": "put"},
        {"url": server.url("/echo"), "bogus": 1},
    ]
    path = _write(tmp_path / "jobs.jsonl", [json.dumps(line) for line in lines])
    by_key = {r.key: r for r in fastreq_iter(from_file(path), backend="aiohttp")}
    assert by_key["post"].value["method"] == "POST"
    assert json.loads(by_key["post"].value["body"]) == {"a": 1}
    assert by_key["get"].value["query"] == [["q", "x"]]
    assert by_key["get"].value["headers"]["x-t"] == "1"
    assert by_key["put"].value["body"] == "raw"
    bad = by_key[None]
    assert not bad.ok and "line 4" in str(bad.error) and "bogus" in str(bad.error)


def test_file_is_read_lazily(tmp_path: Path) -> None:
    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        for i in range(100_000):
            read += 1
            yield f"http://h/{i}\n"

    from fastreq.testing import MockBackend, make_response

    backend = MockBackend(lambda cfg: make_response(json={}))
    for n, _ in enumerate(fastreq_iter(from_file(lines()), backend=backend, concurrency=4)):
        if n == 10:
            break
    assert read < 5_000  # pulled as consumed, never the whole file


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        from_file(tmp_path / "missing.txt")
    with pytest.raises(ValidationError, match="format"):
        from_file(_write(tmp_path / "a.txt", []), format="csv")
    assert fastreq.fastreq(from_file(_write(tmp_path / "empty.txt", ["# nothing"]))) == []
