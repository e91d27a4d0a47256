"""Client options that shape every request: headers and user agents, timeouts, progress,
logging, ``FASTREQ_*`` environment defaults and the errors bad options raise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastreq
from fastreq import (
    DEFAULT_TIMEOUT,
    ConfigurationError,
    ConnectTimeoutError,
    FastRequests,
    GlobalConfig,
    PartialFailureError,
    ReadTimeoutError,
    Request,
    RequestTimeoutError,
    Timeout,
    ValidationError,
)
from fastreq.backends import available_backends
from fastreq.backends.base import RequestConfig
from fastreq.testing import FakeBackend, MockBackend, make_response
from fastreq.utils import logging as fastreq_logging

from ._server import TestServer

BACKEND = "aiohttp" if "aiohttp" in available_backends() else available_backends()[0]
AGENTS = ["Agent/1.0 (one)", "Agent/2.0 (two)", "Agent/3.0 (three)"]


@pytest.fixture(autouse=True)
def _no_fastreq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FASTREQ_"):
            monkeypatch.delenv(name)


@pytest.fixture
def restore_fastreq_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    logger = logging.getLogger("fastreq")
    level, handlers = logger.level, list(logger.handlers)
    monkeypatch.setattr(fastreq_logging, "_handler", None)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose TCP handshake never completes: the listen backlog is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/"
    for sock in [*fillers, listener]:
        sock.close()


def _configs(**options: Any) -> list[RequestConfig]:
    seen: list[RequestConfig] = []

    def handler(config: RequestConfig) -> Any:
        seen.append(config)
        return make_response(json={})

    urls = options.pop("urls", "http://a.example/")
    fastreq.fastreq(urls, backend=MockBackend(handler), **options)
    return seen


# -- user agents -------------------------------------------------------------------------


def test_user_agents_rotate_at_the_server(server: TestServer, backend_name: str) -> None:
    fastreq.fastreq([server.url(f"/json/{i}?t=rotate") for i in range(40)],
                    backend=backend_name)
    # this test's own hits only: a late one from an earlier test is no concern of this one
    mine = [hit for hit in server.hits if hit.query == [("t", "rotate")]]
    assert sorted(hit.path for hit in mine) == sorted(f"/json/{i}" for i in range(40))
    agents = [hit.headers.get("user-agent", "") for hit in mine]
    # drawn from a large, real data set, weighted by real-world share (one iPhone UA is
    # ~27% of draws): 40 draws gave 12-30 distinct in 2,000 trials, so 8 never flakes
    assert len(set(agents)) >= 8
    assert all(a.startswith("Mozilla/5.0 (") for a in agents)
    assert any("Chrome/" in a for a in agents) or any("Firefox/" in a for a in agents)


def test_the_data_set_is_large_and_realistic() -> None:
    from fastreq.utils.headers import UserAgentPool

    agents = set(UserAgentPool().agents)
    assert len(agents) > 200
    assert all(a.startswith("Mozilla/5.0") and "\n" not in a for a in agents)


def test_user_agents_list(server: TestServer) -> None:
    fastreq.fastreq([server.url("/json/1")] * 30, backend=BACKEND, user_agents=AGENTS)
    assert {hit.headers["user-agent"] for hit in server.hits} == set(AGENTS)


def test_user_agents_file(server: TestServer, tmp_path: Path) -> None:
    path = tmp_path / "agents.txt"
    path.write_text("# my agents\n\n" + "\n".join(AGENTS) + "\n")
    fastreq.fastreq([server.url("/json/1")] * 30, backend=BACKEND, user_agents=str(path))
    assert {hit.headers["user-agent"] for hit in server.hits} == set(AGENTS)
    server.reset()
    fastreq.fastreq([server.url("/json/1")] * 10, backend=BACKEND, user_agents=path)
    assert {hit.headers["user-agent"] for hit in server.hits} <= set(AGENTS)


def test_user_agents_file_from_the_environment(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agents.txt"
    path.write_text("Env/1.0\n")
    monkeypatch.setenv("FASTREQ_USER_AGENTS_FILE", str(path))
    fastreq.fastreq(server.url("/json/1"), backend=BACKEND)
    assert server.hits[0].headers["user-agent"] == "Env/1.0"


def test_random_user_agent_off_sends_the_backends_default(
    server: TestServer, backend_name: str
) -> None:
    fastreq.fastreq([server.url("/json/1")] * 5, backend=backend_name, random_user_agent=False)
    agents = {hit.headers.get("user-agent") for hit in server.hits}
    assert len(agents) == 1  # the same honest value every time (or none at all)
    [agent] = agents
    assert agent is None or not agent.startswith("Mozilla/")


def test_a_given_user_agent_wins_over_rotation(server: TestServer) -> None:
    fastreq.fastreq(
        [server.url("/json/1"), Request(server.url("/json/2"), headers={"user-agent": "Item"})],
        backend=BACKEND, headers={"User-Agent": "Client"},
    )
    assert [h.headers["user-agent"] for h in server.hits] in (
        ["Client", "Item"], ["Item", "Client"]
    )
    server.reset()
    fastreq.fastreq(
        [server.url("/json/1"), Request(server.url("/json/2"), headers={"USER-AGENT": "Item"})],
        backend=BACKEND, concurrency=1,
    )
    assert server.hits[0].headers["user-agent"].startswith("Mozilla/5.0")
    assert server.hits[1].headers["user-agent"] == "Item"


@pytest.mark.parametrize(
    ("agents", "message"),
    [([], "empty"), (["ok", "bad\r\nX: y"], "CR/LF"), (["  ", ""], "empty")],
)
def test_bad_user_agent_lists(agents: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FastRequests(backend=BACKEND, user_agents=agents)


# -- headers -------------------------------------------------------------------------------


def test_per_request_headers_on_top_of_client_defaults(
    server: TestServer, backend_name: str
) -> None:
    client_headers = {"X-Client": "c", "X-Both": "client", "Accept": "text/plain"}
    batch_headers = {"x-both": "batch"}
    item_headers = {"X-BOTH": "item", "X-Item": "i"}
    item = Request(server.url("/echo"), headers=item_headers)

    async def main() -> list[Any]:
        async with FastRequests(backend=backend_name, headers=client_headers) as client:
            return list(await client.request([server.url("/echo"), item],
                                             headers=batch_headers))

    plain, own = asyncio.run(main())
    assert plain["headers"]["x-client"] == "c" and plain["headers"]["x-both"] == "batch"
    assert plain["headers"]["accept"] == "text/plain"
    assert own["headers"]["x-both"] == "item" and own["headers"]["x-item"] == "i"
    assert own["headers"]["x-client"] == "c"
    # nobody's dict was touched
    assert client_headers == {"X-Client": "c", "X-Both": "client", "Accept": "text/plain"}
    assert batch_headers == {"x-both": "batch"}
    assert item_headers == {"X-BOTH": "item", "X-Item": "i"}


def test_header_names_merge_case_insensitively() -> None:
    [config] = _configs(headers={"X-Both": "batch", "Accept": "a"},
                        urls=[Request("http://a.example/", headers={"x-both": "item"})],
                        random_user_agent=False)
    assert config.headers is not None
    assert [k for k in config.headers if k.lower() == "x-both"] == ["x-both"]
    assert config.headers["x-both"] == "item" and config.headers["Accept"] == "a"


# -- timeouts ------------------------------------------------------------------------------


def test_default_timeout_is_applied_and_none_is_forever() -> None:
    assert Timeout(connect=10.0, total=60.0) == DEFAULT_TIMEOUT
    [config] = _configs()
    assert config.timeout == DEFAULT_TIMEOUT
    [config] = _configs(timeout=None)
    assert config.timeout is None
    [config] = _configs(timeout=2.5)
    assert config.timeout == Timeout(total=2.5)

    async def main() -> list[Any]:
        seen: list[Any] = []

        def handler(config: RequestConfig) -> Any:
            seen.append(config.timeout)
            return make_response(json={})

        async with FastRequests(backend=MockBackend(handler), timeout=5) as client:
            await client.request("http://a.example/")
            await client.request("http://a.example/", timeout=None)
            await client.request("http://a.example/", timeout=Timeout(read=1))
        return seen

    assert asyncio.run(main()) == [Timeout(total=5), None, Timeout(read=1)]


def test_total_timeout_as_a_number(server: TestServer, backend_name: str) -> None:
    began = time.monotonic()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/drip?chunks=30&interval=0.1"), backend=backend_name,
                        timeout=0.4, max_retries=0, return_type="content")
    assert isinstance(info.value.failures[0].error, RequestTimeoutError)
    assert time.monotonic() - began < 2.5  # the drip would have taken 3 s


def test_read_timeout(server: TestServer, backend_name: str) -> None:
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/slow?delay=2"), backend=backend_name,
                        timeout=Timeout(read=0.3), max_retries=0)
    assert isinstance(info.value.failures[0].error, ReadTimeoutError)


def test_read_timeout_is_per_read_not_per_response(
    server: TestServer, backend_name: str
) -> None:
    out = fastreq.fastreq(server.url("/drip?chunks=6&interval=0.1"), backend=backend_name,
                          timeout=Timeout(read=0.4), max_retries=0, return_type="content")
    assert out == b"x" * 6  # 0.6 s in all, never 0.4 s without a byte


def test_slow_drip_is_stopped_by_total(server: TestServer, backend_name: str) -> None:
    began = time.monotonic()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/drip?chunks=30&interval=0.1"), backend=backend_name,
                        timeout=Timeout(connect=1, read=0.5, total=0.6), max_retries=0,
                        return_type="content")
    error = info.value.failures[0].error
    assert isinstance(error, RequestTimeoutError)
    assert time.monotonic() - began < 2.5


def test_connect_timeout(blackhole: str, backend_name: str) -> None:
    began = time.monotonic()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(blackhole, backend=backend_name,
                        timeout=Timeout(connect=0.3, total=5), max_retries=0)
    assert isinstance(info.value.failures[0].error, ConnectTimeoutError)
    assert time.monotonic() - began < 3


# -- progress ------------------------------------------------------------------------------


def test_progress_callback_counts_every_outcome() -> None:
    calls: list[tuple[int, int | None]] = []
    fake = FakeBackend()
    fake.queue_response("*/bad", status=404)
    urls = [f"http://a.example/{i}" for i in range(5)] + ["gopher://nope/"]
    with pytest.raises(ValidationError):
        fastreq.fastreq(urls, backend=fake, progress_callback=lambda d, t: calls.append((d, t)))
    assert calls == []  # validation happens before anything starts

    fastreq.fastreq(urls[:5], backend=fake, max_retries=0,
                    progress_callback=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 5) for i in range(1, 6)]
    calls.clear()
    gen = (u for u in [*urls[:3], "gopher://nope/"])  # a failure counts too
    with pytest.raises(PartialFailureError):
        fastreq.fastreq(gen, backend=fake, progress_callback=lambda d, t: calls.append((d, t)))
    assert calls == [(i, None) for i in range(1, 5)]  # length unknown


def test_no_progress_prints_nothing(server: TestServer, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    fastreq.fastreq([server.url(f"/json/{i}") for i in range(5)], backend=BACKEND)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bar_on_stderr(server: TestServer, capsys: pytest.CaptureFixture[str]) -> None:
    fastreq.fastreq([server.url(f"/json/{i}") for i in range(5)], backend=BACKEND,
                    progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "fastreq" in err and "5/5" in err and "errors=0" in err


def test_progress_from_the_environment(
    server: TestServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTREQ_PROGRESS", "yes")
    fastreq.fastreq([server.url("/json/1")] * 3, backend=BACKEND)
    assert "3/3" in capsys.readouterr().err


# -- logging -------------------------------------------------------------------------------


def test_debug_leaves_the_root_logger_alone(
    server: TestServer, restore_fastreq_logger: logging.Logger
) -> None:
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    FastRequests(backend=BACKEND, debug=True)
    FastRequests(backend=BACKEND, debug=True)
    assert root.level == root_level and root.handlers == root_handlers
    logger = restore_fastreq_logger
    assert logger.level == logging.DEBUG
    assert len(logger.handlers) == len([h for h in logger.handlers if h]) >= 1
    added = [h for h in logger.handlers if h is fastreq_logging._handler]
    assert len(added) == 1  # twice debug=True: still one handler


def test_library_logs_under_fastreq(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="fastreq"):
        fastreq.fastreq(refused_url, backend=BACKEND, max_retries=0,
                        return_none_on_failure=True)
    assert caplog.records
    assert all(r.name == "fastreq" or r.name.startswith("fastreq.") for r in caplog.records)
    assert any(r.levelno == logging.WARNING and "1 of 1 requests failed" in r.getMessage()
               for r in caplog.records)


# -- FASTREQ_* environment ----------------------------------------------------------------


def test_global_config_parses_the_environment() -> None:
    env = {
        "FASTREQ_BACKEND": " httpx ",
        "FASTREQ_CONCURRENCY": "7",
        "FASTREQ_MAX_RETRIES": "0",
        "FASTREQ_RATE_LIMIT": "2.5",
        "FASTREQ_RATE_LIMIT_BURST": "3",
        "FASTREQ_PER_HOST_CONCURRENCY": "2",
        "FASTREQ_PER_HOST_RATE_LIMIT": "0.5",
        "FASTREQ_TIMEOUT": "15",
        "FASTREQ_HTTP2": "off",
        "FASTREQ_VERIFY_SSL": "FALSE",
        "FASTREQ_PROXIES": "h1:8080, h2:8080:u:p",
        "FASTREQ_USER_AGENTS_FILE": "agents.txt",
        "FASTREQ_DEBUG": "0",
        "FASTREQ_PROGRESS": "Yes",
        "UNRELATED": "x",
    }
    cfg = GlobalConfig.from_env(env)
    assert cfg == GlobalConfig(
        backend="httpx", concurrency=7, max_retries=0, rate_limit=2.5, rate_limit_burst=3,
        per_host_concurrency=2, per_host_rate_limit=0.5, timeout=Timeout(total=15),
        http2=False, verify_ssl=False, proxies=("http://h1:8080", "http://u:p@h2:8080"),
        user_agents_file="agents.txt", debug=False, progress=True,
    )
    assert GlobalConfig.from_env({}) == GlobalConfig()
    assert GlobalConfig.from_env({"FASTREQ_CONCURRENCY": "  "}) == GlobalConfig()
    assert GlobalConfig.from_env({"FASTREQ_TIMEOUT": "none"}).timeout is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FASTREQ_CONCURRENCY", "lots", "FASTREQ_CONCURRENCY='lots': expected a number"),
        ("FASTREQ_CONCURRENCY", "0", "FASTREQ_CONCURRENCY='0': must be >= 1"),
        ("FASTREQ_MAX_RETRIES", "-1", "FASTREQ_MAX_RETRIES='-1': must be >= 0"),
        ("FASTREQ_RATE_LIMIT", "0", "FASTREQ_RATE_LIMIT='0'"),
        ("FASTREQ_RATE_LIMIT", "nan", "FASTREQ_RATE_LIMIT='nan'"),
        ("FASTREQ_PER_HOST_RATE_LIMIT", "-2", "FASTREQ_PER_HOST_RATE_LIMIT='-2'"),
        ("FASTREQ_TIMEOUT", "-5", "FASTREQ_TIMEOUT='-5'"),
        ("FASTREQ_TIMEOUT", "soon", "FASTREQ_TIMEOUT='soon': expected a number"),
        ("FASTREQ_HTTP2", "maybe", "FASTREQ_HTTP2='maybe': expected one of"),
        ("FASTREQ_PROXIES", "a b", "invalid proxy 'a b'"),
    ],
)
def test_bad_environment_values_are_named(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        GlobalConfig.from_env({name: value})
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name if name != "FASTREQ_PROXIES" else "a b"):
        FastRequests(backend=BACKEND)


def test_client_uses_environment_defaults(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTREQ_BACKEND", BACKEND)
    monkeypatch.setenv("FASTREQ_CONCURRENCY", "3")
    monkeypatch.setenv("FASTREQ_MAX_RETRIES", "0")
    monkeypatch.setenv("FASTREQ_TIMEOUT", "0.3")
    client = FastRequests()
    assert client.backend.name == BACKEND
    assert client.concurrency == 3 and client.retry.max_retries == 0
    out = fastreq.fastreq([server.url("/slow?delay=0.1")] * 9)
    assert out == [{"slept": 0.1}] * 9
    assert server.max_in_flight <= 3
    server.reset()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq([server.url("/flaky/env/1"), server.url("/slow?delay=2")])
    first, second = info.value.failures
    assert first.attempts == 1  # FASTREQ_MAX_RETRIES=0
    assert isinstance(second.error, RequestTimeoutError)  # FASTREQ_TIMEOUT=0.3


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTREQ_CONCURRENCY", "3")
    monkeypatch.setenv("FASTREQ_TIMEOUT", "0.3")
    monkeypatch.setenv("FASTREQ_MAX_RETRIES", "0")
    [config] = _configs(timeout=None, concurrency=9)
    assert config.timeout is None
    assert FastRequests(backend=BACKEND, concurrency=9, max_retries=5).concurrency == 9
    assert FastRequests(backend=BACKEND, max_retries=5).retry.max_retries == 5


def test_environment_rate_limits_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastreq._lanes import HostGate

    monkeypatch.setenv("FASTREQ_RATE_LIMIT", "4")
    monkeypatch.setenv("FASTREQ_RATE_LIMIT_BURST", "2")
    monkeypatch.setenv("FASTREQ_PER_HOST_CONCURRENCY", "2")
    monkeypatch.setenv("FASTREQ_PER_HOST_RATE_LIMIT", "0.5")
    client = FastRequests(backend=BACKEND)
    assert client._limiter is not None
    assert (client._limiter.config.rate, client._limiter.config.burst) == (4, 2)
    gate = client._gates("a.example")
    assert isinstance(gate, HostGate) and gate.concurrency == 2
    assert gate.limiter is not None and gate.limiter.config.rate == 0.5


# -- options are checked before anything is sent --------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"http2": "yes"}, ConfigurationError, "http2 must be True or False"),
        ({"progress": 1}, ConfigurationError, "progress must be True or False"),
        ({"persist_cookies": None}, ConfigurationError, "persist_cookies must be True or"),
        ({"timeout": -2}, ValidationError, r"Timeout.total must be > 0"),
        ({"timeout": True}, ValidationError, "timeout must be a number"),
        ({"user_agents": "/no/such/agents.txt"}, ConfigurationError,
         "user agents file '/no/such/agents.txt'"),
        ({"headers": {"X": "a\nb"}}, ValidationError, "CR, LF or NUL"),
        ({"cookies": {"a": "1\r\n"}}, ValidationError, "forbidden character"),
    ],
)
def test_bad_client_options_are_named(options: dict[str, Any], error: type[Exception],
                                      message: str) -> None:
    fake = FakeBackend()
    with pytest.raises(error, match=message):
        fastreq.fastreq("http://a.example/", backend=fake, **options)
    assert fake.requests == []


@pytest.mark.parametrize("value", ["on", 0, 5])
def test_circuit_breaker_option_must_be_a_bool_or_a_config(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="circuit_breaker"):
        FastRequests(backend=FakeBackend(), circuit_breaker=value)
