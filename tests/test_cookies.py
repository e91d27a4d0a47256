"""Cookies: the per-host jar's rules on an injected clock, then what reaches the recording
server through every backend (``127.0.0.1`` and ``localhost`` are two hosts)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from fastreq import FastRequests, ValidationError
from fastreq.utils.cookies import CookieJar

from ._clock import FakeClock
from ._server import TestServer


@pytest.fixture(autouse=True)
def _no_fastreq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FASTREQ_"):
            monkeypatch.delenv(name)


def localhost(server: TestServer, path: str) -> str:
    return server.url(path).replace("://127.0.0.1:", "://localhost:", 1)


# -- unit: CookieJar ----------------------------------------------------------------------


def test_server_cookies_are_host_only() -> None:
    jar = CookieJar()
    jar.extract("http://a.example/login", ["sid=1", "wide=2; Domain=example"])
    assert jar.for_url("http://a.example/x") == {"sid": "1", "wide": "2"}
    assert jar.for_url("http://A.EXAMPLE:8080/x") == {"sid": "1", "wide": "2"}
    assert jar.for_url("http://b.example/") is None
    assert jar.for_url("http://sub.a.example/") is None
    assert jar.for_url("http://example/") is None  # Domain= does not widen it
    assert jar.server_cookies("a.example") == {"sid": "1", "wide": "2"}
    assert jar.server_cookies("b.example") == {}


def test_user_cookies_go_everywhere_and_server_ones_add_to_them() -> None:
    jar = CookieJar()
    assert not jar
    jar.set({"token": "t"})
    assert jar
    jar.extract("http://a.example/", ["sid=1"])
    assert jar.for_url("http://a.example/") == {"token": "t", "sid": "1"}
    assert jar.for_url("http://b.example/") == {"token": "t"}
    jar.clear()
    assert not jar and jar.for_url("http://a.example/") is None


@pytest.mark.parametrize(
    ("path", "sent"),
    [("/api", True), ("/api/", True), ("/api/v1/x", True), ("/apix", False), ("/", False),
     ("/ap", False), ("/other/api", False)],
)
def test_path_attribute(path: str, sent: bool) -> None:
    jar = CookieJar()
    jar.extract("http://a.example/api/login", ["p=1; Path=/api"])
    assert (jar.for_url(f"http://a.example{path}") is not None) is sent


def test_default_path_is_the_request_directory() -> None:
    jar = CookieJar()
    jar.extract("http://a.example/shop/cart/add", ["c=1"])
    jar.extract("http://a.example/login", ["top=1"])
    jar.extract("http://a.example/x/y", ["bad=1; Path=relative"])  # ignored: default path
    assert jar.for_url("http://a.example/shop/cart/view") == {"c": "1", "top": "1"}
    assert jar.for_url("http://a.example/shop/other") == {"top": "1"}
    assert jar.for_url("http://a.example/x/z") == {"top": "1", "bad": "1"}
    assert jar.for_url("http://a.example/") == {"top": "1"}


def test_secure_cookies_only_over_https() -> None:
    jar = CookieJar()
    jar.extract("https://a.example/", ["s=1; Secure; HttpOnly", "plain=2"])
    assert jar.for_url("https://a.example/") == {"s": "1", "plain": "2"}
    assert jar.for_url("http://a.example/") == {"plain": "2"}


def test_max_age_and_expires_on_a_fake_clock() -> None:
    clock = FakeClock(start=1_700_000_000.0)
    jar = CookieJar(now=clock)
    jar.extract("http://a.example/", [
        "short=1; Max-Age=10",
        "dated=2; Expires=Wed, 15 Nov 2023 00:00:00 GMT",  # 1_700_006_400
        "both=3; Expires=Thu, 01 Jan 2037 00:00:00 GMT; Max-Age=5",  # Max-Age wins
        "both2=4; Max-Age=5; Expires=Thu, 01 Jan 2037 00:00:00 GMT",
        "junk=5; Max-Age=soon",  # ignored attribute: a session cookie
        'quoted="6"',
    ])
    assert jar.server_cookies("a.example") == {
        "short": "1", "dated": "2", "both": "3", "both2": "4", "junk": "5", "quoted": "6"
    }
    clock.now += 6
    assert set(jar.server_cookies("a.example")) == {"short", "dated", "junk", "quoted"}
    clock.now += 5
    assert set(jar.for_url("http://a.example/") or {}) == {"dated", "junk", "quoted"}
    clock.now = 1_700_006_400.0
    assert set(jar.for_url("http://a.example/") or {}) == {"junk", "quoted"}


@pytest.mark.parametrize(
    "deleting",
    ["sid=; Max-Age=0", "sid=x; Max-Age=-1", "sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"],
)
def test_expired_set_cookie_deletes_the_stored_one(deleting: str) -> None:
    jar = CookieJar()
    jar.extract("http://a.example/", ["sid=1", "keep=2"])
    jar.extract("http://a.example/", [deleting])
    assert jar.for_url("http://a.example/") == {"keep": "2"}


def test_malformed_set_cookie_headers_are_skipped() -> None:
    jar = CookieJar()
    jar.extract("http://a.example/", ["", "novalue", "=nameless", "ok=1; Expires=garbage"])
    jar.extract("not a url", ["x=1"])
    assert jar.server_cookies("a.example") == {"ok": "1"}


# -- end to end, seen at the server -------------------------------------------------------


async def _echo_cookies(client: FastRequests, url: str, **options: Any) -> dict[str, str]:
    out = await client.request(url, **options)
    cookies: dict[str, str] = out["cookies"]
    return cookies


def test_set_cookies_are_sent_to_every_host(server: TestServer, backend_name: str) -> None:
    async def main() -> list[dict[str, str]]:
        async with FastRequests(backend=backend_name, cookies={"c": "client"}) as client:
            client.set_cookies({"token": "t1"})
            return [await _echo_cookies(client, server.url("/echo")),
                    await _echo_cookies(client, localhost(server, "/echo"), cookies={"r": "2"})]

    first, second = asyncio.run(main())
    assert first == {"c": "client", "token": "t1"}
    assert second == {"c": "client", "token": "t1", "r": "2"}


def test_server_cookies_are_kept_per_host(server: TestServer, backend_name: str) -> None:
    async def main() -> tuple[Any, ...]:
        async with FastRequests(backend=backend_name) as client:
            await client.request(server.url("/set-cookies"))
            same = await _echo_cookies(client, server.url("/echo"))
            other = await _echo_cookies(client, localhost(server, "/echo"))
            return same, other, client.server_cookies("127.0.0.1"), client.server_cookies(
                "localhost"
            )

    same, other, stored_here, stored_there = asyncio.run(main())
    assert same == {"a": "1", "b": "2"}
    assert other == {}  # never sent to another host
    assert stored_here == {"a": "1", "b": "2"}
    assert stored_there == {}
    assert "cookie" not in server.hits[-1].headers


def test_reset_cookies_forgets_user_and_server_cookies(
    server: TestServer, backend_name: str
) -> None:
    async def main() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        async with FastRequests(backend=backend_name, cookies={"c": "1"}) as client:
            client.set_cookies({"token": "t"})
            await client.request(server.url("/set-cookies"))
            before = await _echo_cookies(client, server.url("/echo"))
            client.reset_cookies()
            after = await _echo_cookies(client, server.url("/echo"))
            return before, after, client.server_cookies("127.0.0.1")

    before, after, stored = asyncio.run(main())
    assert before == {"c": "1", "token": "t", "a": "1", "b": "2"}
    assert after == {}
    assert stored == {}
    assert "cookie" not in server.hits[-1].headers


def test_persist_cookies_off_keeps_nothing_from_servers(
    server: TestServer, backend_name: str
) -> None:
    async def main() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        async with FastRequests(backend=backend_name, persist_cookies=False,
                                cookies={"c": "1"}) as client:
            client.set_cookies({"token": "t"})
            await client.request(server.url("/set-cookies"))
            kept = await _echo_cookies(client, server.url("/echo"))
            stored = client.server_cookies("127.0.0.1")
            client.reset_cookies()
            return kept, stored, await _echo_cookies(client, server.url("/echo"))

    kept, stored, after_reset = asyncio.run(main())
    assert kept == {"c": "1", "token": "t"}
    assert stored == {}
    assert after_reset == {}


def test_cookies_set_earlier_in_the_same_batch_are_sent(server: TestServer) -> None:
    async def main() -> Any:
        async with FastRequests(backend="aiohttp", concurrency=1) as client:
            return await client.request([server.url("/set-cookies"), server.url("/echo")])

    _, echoed = asyncio.run(main())
    assert echoed["cookies"] == {"a": "1", "b": "2"}


def test_cookie_values_are_validated() -> None:
    client = FastRequests(backend="aiohttp")
    with pytest.raises(ValidationError, match="forbidden character"):
        client.set_cookies({"a": "1; b=2"})
    with pytest.raises(ValidationError, match="invalid cookie name"):
        client.set_cookies({"a b": "1"})


def test_server_cookies_do_not_follow_a_redirect_to_another_host(
    server: TestServer, backend_name: str
) -> None:
    target = localhost(server, "/echo")

    async def main() -> dict[str, str]:
        async with FastRequests(backend=backend_name) as client:
            await client.request(server.url("/set-cookies"))
            return await _echo_cookies(client, server.url(f"/redirect-to?url={target}"))

    assert asyncio.run(main()) == {}
    assert "cookie" not in server.hits[-1].headers
