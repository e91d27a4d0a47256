"""Proxies: parsing and the pool on a fake clock, then rotation, cool-down and never-direct
through real recording proxies on 127.0.0.1 (two HTTP proxies, a SOCKS5 one, dead ports)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastreq
from fastreq import (
    CircuitBreakerConfig,
    ConfigurationError,
    FastRequests,
    PartialFailureError,
    ProxyError,
    Request,
    RetryConfig,
)
from fastreq.backends import available_backends
from fastreq.utils.proxies import (
    ProxyPool,
    bypasses_proxy,
    load_proxies,
    parse_proxy,
    proxies_from_env,
)

from ._clock import FakeClock
from ._proxy import ProxyServer, basic_auth_header
from ._server import TestServer, closed_port
from ._socks import Socks5Server

BACKEND = "aiohttp" if "aiohttp" in available_backends() else available_backends()[0]
FAST = RetryConfig(max_retries=3, backoff_base=0.01, jitter=0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FASTREQ_") or name.lower() in (
            "no_proxy", "http_proxy", "https_proxy", "all_proxy"
        ):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def _second_proxy_state() -> Iterator[ProxyServer]:
    proxy = ProxyServer()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy_b(_second_proxy_state: ProxyServer) -> ProxyServer:
    """A second recording forward proxy, independent of ``proxy_server``."""
    _second_proxy_state.reset()
    return _second_proxy_state


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[Socks5Server]:
    proxy = Socks5Server(credentials=("sockuser", "s0cks"))
    yield proxy
    proxy.stop()


@pytest.fixture
def dead_proxy() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def localhost(server: TestServer, path: str) -> str:
    return server.url(path).replace("://127.0.0.1:", "://localhost:", 1)


def forwarded(proxy: ProxyServer) -> list[str]:
    return [r.target for r in proxy.records if r.method != "CONNECT"]


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        ("10.0.0.1:8080", "http://10.0.0.1:8080"),
        ("p.example.com:3128:alice:s3cret", "http://alice:s3cret@p.example.com:3128"),
        ("p.example:1:al ice:p@ss:", None),  # 5 parts: not Webshare
        ("p.example:1:al@ice:p/ss", "http://al%40ice:p%2Fss@p.example:1"),
        ("https://u:p@h.example:443", "https://u:p@h.example:443"),
        ("socks5://h.example:1080", "socks5://h.example:1080"),
        ("  http://h.example:80  ", "http://h.example:80"),
    ],
)
def test_parse_proxy_forms(spec: str, url: str | None) -> None:
    if url is None:
        with pytest.raises(ConfigurationError, match="invalid proxy"):
            parse_proxy(spec)
    else:
        assert parse_proxy(spec) == url


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "invalid proxy"),
        ("justahost", "invalid proxy 'justahost'"),
        ("h:1:u", "invalid proxy 'h:1:u'"),
        ("ftp://h.example:21", "unsupported proxy scheme 'ftp'"),
        ("http://h.example", "host and port are required"),
        ("http://h.example:99999", "invalid proxy port"),
        ("http://h.example:80\r\nX: y", "whitespace or control"),
    ],
)
def test_parse_proxy_errors_name_the_spec(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_proxy(spec)


def test_load_proxies_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "proxies.txt"
    path.write_text("# my proxies\n\n10.0.0.1:8080\nh.example:3128:bob:pw\nsocks5://s:1080\n")
    assert load_proxies(path) == load_proxies(str(path)) == [
        "http://10.0.0.1:8080", "http://bob:pw@h.example:3128", "socks5://s:1080"
    ]
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_proxies(tmp_path / "missing.txt")
    env = {"FASTREQ_PROXIES": "10.0.0.1:8080, h.example:3128:bob:pw\nsocks5://s:1080,"}
    assert proxies_from_env(env) == load_proxies(path)
    assert proxies_from_env({}) == []


# -- NO_PROXY -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("example.com", "example.com", True),
        ("api.example.com", "example.com", True),
        ("api.example.com", ".example.com", True),
        ("example.com", ".example.com", True),
        ("api.example.com", "*.example.com", True),
        ("badexample.com", "example.com", False),
        ("example.com.evil.org", "example.com", False),
        ("example.com", "api.example.com", False),
        ("EXAMPLE.com", "Example.COM", True),
        ("example.com", "other.org, example.com:8080", True),
        ("anything.at.all", "*", True),
        ("localhost", "", False),
        ("localhost", None, False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "0.0.1", False),  # IP addresses match whole, not by suffix
        ("10.1.2.3", "2.3", False),
        ("[::1]", "::1", True),
        ("[::1]", "[::1]", True),
        ("[::1]", "[::1]:8080", True),
        ("[2001:db8::1]", "::1", False),
        ("10.1.2.3", "192.168.0.0/16, 10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("[2001:db8::7]", "2001:db8::/32", True),
        ("example.com", "10.0.0.0/8,not/a/net", False),
    ],
)
def test_no_proxy_matches_on_domain_boundaries(
    host: str, no_proxy: str | None, bypass: bool
) -> None:
    assert bypasses_proxy(host, no_proxy) is bypass


@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
def test_no_proxy_is_respected_by_the_pool(
    server: TestServer, proxy_server: ProxyServer, monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, "example.org,localhost")
    urls = [server.url("/json/1"), localhost(server, "/json/2")]
    out = fastreq.fastreq(urls, backend=BACKEND, proxies=[proxy_server.url])
    assert out == [{"n": 1}, {"n": 2}]
    assert forwarded(proxy_server) == [urls[0]]  # localhost went direct, as asked
    assert len(server.hits) == 2


# -- the pool on a fake clock -------------------------------------------------------------


def test_pool_round_robin_and_avoid() -> None:
    pool = ProxyPool(["a:1", "b:1", "c:1"])
    assert [pool.next() for _ in range(4)] == [
        "http://a:1", "http://b:1", "http://c:1", "http://a:1"
    ]

    async def main() -> str:
        return await pool.acquire(avoid="http://b:1")  # b is next, but just failed

    assert asyncio.run(main()) == "http://c:1"


def test_pool_random_order_is_seedable() -> None:
    specs = [f"h{i}:1" for i in range(5)]
    first = ProxyPool(specs, random_order=True, rng=random.Random(7))
    second = ProxyPool(specs, random_order=True, rng=random.Random(7))
    picks = [first.next() for _ in range(30)]
    assert picks == [second.next() for _ in range(30)]
    assert len(set(picks)) == 5


def test_pool_cooldown_on_a_fake_clock() -> None:
    clock = FakeClock()
    pool = ProxyPool(["a:1", "b:1"], cooldown=10, clock=clock, sleep=clock.sleep)
    pool.mark_failed("http://a:1")
    assert {pool.next() for _ in range(4)} == {"http://b:1"}
    clock.now += 10
    assert {pool.next() for _ in range(4)} == {"http://a:1", "http://b:1"}
    pool.mark_failed("http://a:1")
    pool.mark_ok("http://a:1")
    assert {pool.next() for _ in range(4)} == {"http://a:1", "http://b:1"}
    pool.mark_failed("http://unknown:1")  # not ours: ignored
    assert len(pool) == 2


def test_pool_exhausted_fail_mode() -> None:
    clock = FakeClock()
    pool = ProxyPool(["a:1", "b:1"], when_exhausted="fail", clock=clock, sleep=clock.sleep)
    pool.mark_failed("http://a:1")
    pool.mark_failed("http://b:1")
    assert pool.next() is None
    with pytest.raises(ProxyError, match=r"all 2 proxies are cooling down.*not sending directly"):
        asyncio.run(pool.acquire())
    assert clock.sleeps == []


def test_pool_exhausted_wait_mode_waits_for_the_first_back() -> None:
    clock = FakeClock()
    pool = ProxyPool(["a:1", "b:1"], cooldown=30, clock=clock, sleep=clock.sleep)
    pool.mark_failed("http://a:1")
    clock.now += 5
    pool.mark_failed("http://b:1")
    assert asyncio.run(pool.acquire()) == "http://a:1"
    assert clock.sleeps == [pytest.approx(25)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxies": []}, "the proxy list is empty"),
        ({"proxies": ["h:1"], "when_exhausted": "direct"}, "'wait' or 'fail'"),
        ({"proxies": ["h:1"], "cooldown": -1}, "cooldown must be >= 0"),
        ({"proxies": ["nope"]}, "invalid proxy 'nope'"),
    ],
)
def test_pool_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ProxyPool(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxies": ["h:1"], "when_proxies_exhausted": "direct"}, "'wait' or 'fail'"),
        ({"proxies": ["h:1"], "proxy_cooldown": -5}, "cooldown"),
        ({"proxies": "/no/such/proxies.txt"}, "/no/such/proxies.txt"),
        ({"proxies": []}, "empty"),
    ],
)
def test_client_proxy_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FastRequests(backend=BACKEND, **options)


# -- through real proxies -----------------------------------------------------------------


def test_round_robin_through_two_proxies(
    server: TestServer, proxy_server: ProxyServer, proxy_b: ProxyServer, backend_name: str
) -> None:
    urls = [server.url(f"/json/{i}") for i in range(6)]
    out = fastreq.fastreq(urls, backend=backend_name, concurrency=1,
                          proxies=[proxy_server.url, proxy_b.url])
    assert out == [{"n": i} for i in range(6)]
    assert forwarded(proxy_server) == urls[0::2]
    assert forwarded(proxy_b) == urls[1::2]
    assert len(server.hits) == 6


def test_random_rotation_uses_every_proxy(
    server: TestServer, proxy_server: ProxyServer, proxy_b: ProxyServer
) -> None:
    urls = [server.url(f"/json/{i}") for i in range(24)]
    fastreq.fastreq(urls, backend=BACKEND, proxies=[proxy_server.url, proxy_b.url],
                    random_proxy=True)
    a, b = forwarded(proxy_server), forwarded(proxy_b)
    assert len(a) + len(b) == 24 and a and b
    assert sorted(a + b) == sorted(urls)


def test_https_goes_through_the_pool_with_connect(
    tls_server: TestServer, proxy_server: ProxyServer, backend_name: str
) -> None:
    out = fastreq.fastreq(tls_server.url("/json/5"), backend=backend_name,
                          proxies=[proxy_server.url], verify_ssl=False)
    assert out == {"n": 5}
    port = tls_server.base.rsplit(":", 1)[1]
    assert [(r.method, r.target) for r in proxy_server.records] == [
        ("CONNECT", f"127.0.0.1:{port}")
    ]


def test_failed_proxy_is_cooled_down_and_the_request_retried(
    server: TestServer, proxy_server: ProxyServer, dead_proxy: str, backend_name: str
) -> None:
    clock = FakeClock()
    urls = [server.url(f"/json/{i}") for i in range(4)]
    out = fastreq.fastreq(urls, backend=backend_name, concurrency=1, clock=clock,
                          sleep=clock.sleep, proxies=[dead_proxy, proxy_server.url],
                          retry=FAST)
    assert out == [{"n": i} for i in range(4)]
    assert forwarded(proxy_server) == urls
    assert len(clock.sleeps) == 1  # the dead proxy was tried once, then cooled down
    assert [h.path for h in server.hits] == [f"/json/{i}" for i in range(4)]


def test_post_through_a_dead_proxy_is_resent_through_another(
    server: TestServer, proxy_server: ProxyServer, dead_proxy: str
) -> None:
    # The proxy refused the connection: the request never left, so even a POST may go again.
    out = fastreq.fastreq(server.url("/echo"), method="POST", json={"a": 1}, backend=BACKEND,
                          proxies=[dead_proxy, proxy_server.url], retry=FAST)
    assert out["method"] == "POST"
    assert len(server.hits) == 1


def test_all_proxies_down_fail_mode_never_goes_direct(
    server: TestServer, backend_name: str
) -> None:
    clock = FakeClock()
    dead = [f"http://127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}:u:p"]
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq([server.url("/json/1"), server.url("/json/2")], backend=backend_name,
                        proxies=dead, when_proxies_exhausted="fail", retry=FAST, clock=clock,
                        sleep=clock.sleep, concurrency=1)
    failures = info.value.failures
    assert len(failures) == 2
    for failure in failures:
        assert isinstance(failure.error, ProxyError)
    assert "not sending directly" in str(failures[-1].error)
    assert server.hits == []  # nothing reached the origin, in particular not directly


def test_all_proxies_down_wait_mode_waits_never_direct(
    server: TestServer, dead_proxy: str
) -> None:
    clock = FakeClock()
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(server.url("/json/1"), backend=BACKEND, proxies=[dead_proxy],
                        proxy_cooldown=60, when_proxies_exhausted="wait",
                        retry=RetryConfig(max_retries=2, backoff_base=1, jitter=0),
                        clock=clock, sleep=clock.sleep)
    [failure] = info.value.failures
    assert isinstance(failure.error, ProxyError)
    assert failure.attempts == 3
    # backoff 1 s, then waited the rest of the 60 s cool-down before the next try
    assert clock.sleeps[:2] == [1.0, pytest.approx(59.0)]
    assert server.hits == []


def test_explicit_proxy_wins_over_the_pool(
    server: TestServer, proxy_server: ProxyServer, dead_proxy: str
) -> None:
    async def main() -> Any:
        async with FastRequests(backend=BACKEND, proxies=[dead_proxy], max_retries=0) as client:
            return await client.request(server.url("/json/1"), proxy=proxy_server.url)

    assert asyncio.run(main()) == {"n": 1}
    assert forwarded(proxy_server) == [server.url("/json/1")]


def test_explicit_proxy_is_used_without_a_pool(
    server: TestServer, proxy_server: ProxyServer
) -> None:
    out = fastreq.fastreq([server.url("/json/1"), Request(server.url("/json/2"))],
                          backend=BACKEND, proxy=proxy_server.url)
    assert out == [{"n": 1}, {"n": 2}]
    assert len(forwarded(proxy_server)) == 2


def test_fastreq_proxies_environment_variable(
    server: TestServer, proxy_server: ProxyServer, proxy_b: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FASTREQ_PROXIES", f"{proxy_server.url},\n{proxy_b.url}")
    fastreq.fastreq([server.url(f"/json/{i}") for i in range(4)], backend=BACKEND,
                    concurrency=1)
    assert len(forwarded(proxy_server)) == len(forwarded(proxy_b)) == 2
    monkeypatch.setenv("FASTREQ_PROXIES", "not a proxy")
    with pytest.raises(ConfigurationError, match="not a proxy"):
        FastRequests(backend=BACKEND)


def test_explicit_proxies_beat_the_environment(
    server: TestServer, proxy_server: ProxyServer, proxy_b: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FASTREQ_PROXIES", proxy_server.url)
    fastreq.fastreq(server.url("/json/1"), backend=BACKEND, proxies=[proxy_b.url])
    assert forwarded(proxy_server) == [] and len(forwarded(proxy_b)) == 1


def test_proxies_file_with_webshare_lines(
    server: TestServer, proxy_server: ProxyServer, proxy_b: ProxyServer, tmp_path: Path
) -> None:
    proxy_b.require_auth("web", "share")
    path = tmp_path / "proxies.txt"
    path.write_text(f"# pool\n{proxy_server.url}\n\n127.0.0.1:{proxy_b.port}:web:share\n")
    out = fastreq.fastreq([server.url(f"/json/{i}") for i in range(4)], backend=BACKEND,
                          proxies=str(path), concurrency=1)
    assert out == [{"n": i} for i in range(4)]
    assert len(forwarded(proxy_server)) == 2
    assert [r.headers.get("proxy-authorization") for r in proxy_b.records] == [
        basic_auth_header("web", "share")
    ] * 2
    # pathlib paths work too
    fastreq.fastreq(server.url("/json/9"), backend=BACKEND, proxies=path)


@pytest.mark.parametrize("form", ["webshare", "url"])
def test_proxy_credentials_reach_the_proxy(
    server: TestServer, proxy_server: ProxyServer, backend_name: str, form: str
) -> None:
    user, password = "alice", "p@ss/w%rd"
    proxy_server.require_auth(user, password)
    spec = (f"127.0.0.1:{proxy_server.port}:{user}:{password}" if form == "webshare"
            else proxy_server.url_with_auth(user, password))
    out = fastreq.fastreq(server.url("/json/1"), backend=backend_name, proxies=[spec],
                          max_retries=0)
    assert out == {"n": 1}
    [record] = proxy_server.records
    assert record.authorized
    assert record.headers["proxy-authorization"] == basic_auth_header(user, password)
    # the proxy's credentials are not leaked to the origin
    assert "proxy-authorization" not in server.hits[0].headers


def test_socks5_proxy_on_each_backend(
    server: TestServer, socks_proxy: Socks5Server, backend_name: str
) -> None:
    socks_proxy.records.clear()
    url = server.url("/json/1")
    if backend_name == "curl":
        out = fastreq.fastreq(url, backend=backend_name, proxies=[socks_proxy.url()])
        assert out == {"n": 1}
        assert socks_proxy.records == [("sockuser", server.base.split("//")[1])]
        return
    with pytest.raises(PartialFailureError) as info:
        fastreq.fastreq(url, backend=backend_name, proxies=[socks_proxy.url()])
    [failure] = info.value.failures
    assert isinstance(failure.error, ConfigurationError)
    assert "socks" in str(failure.error).lower() and "curl" in str(failure.error)
    assert failure.attempts == 1
    assert server.hits == [] and socks_proxy.records == []  # and certainly not direct


# -- proxies and the circuit breaker -----------------------------------------------------


def test_dead_proxies_are_not_held_against_the_host(
    server: TestServer, proxy_server: ProxyServer
) -> None:
    clock = FakeClock()
    dead = [f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}"]

    async def main() -> tuple[BaseException, Any]:
        async with FastRequests(
            backend=BACKEND, proxies=dead, when_proxies_exhausted="fail", retry=FAST,
            circuit_breaker=CircuitBreakerConfig(failure_threshold=2), clock=clock,
            sleep=clock.sleep,
        ) as client:
            with pytest.raises(PartialFailureError) as info:
                await client.request(server.url("/json/1"))
            # the host itself never failed: its circuit is still closed
            return info.value.failures[0].error, await client.request(
                server.url("/json/2"), proxy=proxy_server.url
            )

    error, out = asyncio.run(main())
    assert isinstance(error, ProxyError) and "not sending directly" in str(error)
    assert out == {"n": 2}


def test_a_trial_without_a_free_proxy_is_given_back(
    server: TestServer, proxy_server: ProxyServer, dead_proxy: str
) -> None:
    clock = FakeClock()

    async def main() -> tuple[list[str], Any]:
        async with FastRequests(
            backend=BACKEND, proxies=[dead_proxy], when_proxies_exhausted="fail",
            proxy_cooldown=600, max_retries=0, concurrency=1, clock=clock, sleep=clock.sleep,
            circuit_breaker=CircuitBreakerConfig(failure_threshold=2, recovery_time=30),
        ) as client:
            kinds = []
            for url, proxy in [
                (server.url("/status/503"), proxy_server.url),  # the host fails twice:
                (server.url("/status/503"), proxy_server.url),  # circuit open
                (localhost(server, "/json/1"), None),  # the only pool proxy dies: cooling
            ]:
                try:
                    await client.request(url, proxy=proxy)
                except PartialFailureError as exc:
                    kinds.append(type(exc.failures[0].error).__name__)
            clock.now += 30  # half-open: the next request is the trial...
            try:
                await client.request(server.url("/json/1"))  # ...but no proxy is free
            except PartialFailureError as exc:
                kinds.append(type(exc.failures[0].error).__name__)
            # the trial was given back: the next request may try the host
            return kinds, await client.request(server.url("/json/2"), proxy=proxy_server.url)

    kinds, out = asyncio.run(main())
    assert kinds == ["RetryExhaustedError", "RetryExhaustedError", "ProxyError", "ProxyError"]
    assert out == {"n": 2}
