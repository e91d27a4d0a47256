"""Bad input is refused before anything is sent, with an error that names the problem."""

from __future__ import annotations

from typing import Any

import pytest

import fastreq
from fastreq import ConfigurationError, Request, Timeout, ValidationError
from fastreq.testing import FakeBackend


def _run(urls: Any, **options: Any) -> tuple[FakeBackend, Any]:
    fake = FakeBackend()
    return fake, fastreq.fastreq(urls, backend=fake, **options)


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ("ftp://example.com/x", "unsupported URL scheme 'ftp'"),
        ("example.com/x", "no scheme"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "whitespace or control"),
        ("http://example.com/\r\nX-Evil: 1", "control characters"),
        ("http://example.com:99999/", "malformed URL"),
        ("https://" + "@" * 70000, "characters long"),
        (b"http://example.com", "must be a URL string"),
        ([123], "must be a URL string"),
        ({"a": "http://x"}, "must be a URL string"),
    ],
)
def test_bad_urls_rejected_before_sending(urls: Any, message: str) -> None:
    fake = FakeBackend()
    with pytest.raises(ValidationError, match=message):
        fastreq.fastreq(["http://ok.example/", *([urls] if not isinstance(urls, list) else urls)]
                        if not isinstance(urls, (bytes, dict)) else urls, backend=fake)
    assert fake.requests == []


@pytest.mark.parametrize("port", ["1", "80", "8080", "18080", "59999", "65535"])
def test_plain_urls_with_a_port_take_the_quick_check(port: str) -> None:
    from fastreq.utils.validators import _PLAIN_URL, validate_url

    url = f"HTTP://127.0.0.1:{port}/a?b=1#c"
    assert _PLAIN_URL.fullmatch(url) is not None and validate_url(url) == url


@pytest.mark.parametrize("port", ["0", "08", "65536", "70000", "123456"])
def test_ports_out_of_range_or_zero_padded_are_refused_or_checked_carefully(port: str) -> None:
    from fastreq.utils.validators import _PLAIN_URL, validate_url

    url = f"http://example.com:{port}/"
    assert _PLAIN_URL.fullmatch(url) is None  # the careful path decides
    if port == "08":
        assert validate_url(url) == url  # urlsplit reads 8: a valid port, written oddly
    else:
        with pytest.raises(ValidationError, match=r"port|malformed"):
            validate_url(url)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"method": "GE T"}, ValidationError, "invalid HTTP method"),
        ({"method": "GET\r\n"}, ValidationError, "invalid HTTP method"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, ValidationError, "CR, LF or NUL"),
        ({"headers": {"Bad Name": "1"}}, ValidationError, "invalid header name"),
        ({"data": b"x", "json": {"a": 1}}, ValidationError, "not both"),
        ({"data": 3.5}, ValidationError, "data must be"),
        ({"keys": ["a"]}, ValidationError, "1 keys for 2 URLs"),
        ({"keys": ["a", "a"]}, ValidationError, "duplicate key"),
        ({"return_type": "xml"}, ValidationError, "invalid return_type"),
        ({"timeout": -1}, ValidationError, "must be > 0"),
        ({"timeout": "5"}, ValidationError, "timeout must be"),
        ({"concurrency": 0}, ConfigurationError, "concurrency"),
        ({"rate_limit": 0}, ConfigurationError, "rate_limit must be > 0"),
        ({"backend": "nope"}, ConfigurationError, "unknown backend 'nope'"),
        ({"proxies": ["ftp://p:1"]}, ConfigurationError, "unsupported proxy scheme"),
        ({"random_proxy": True}, ConfigurationError, "needs proxies"),
        ({"bogus": 1}, ConfigurationError, "unknown option 'bogus'"),
        ({"parse_func": 3}, ConfigurationError, "parse_func must be callable"),
    ],
)
def test_bad_options_rejected(options: dict[str, Any], error: type, message: str) -> None:
    fake = FakeBackend()
    opts = {"backend": fake, **options}
    with pytest.raises(error, match=message):
        fastreq.fastreq(["http://a.example/", "http://b.example/"], **opts)
    assert fake.requests == []


def test_request_objects_are_validated_too() -> None:
    fake = FakeBackend()
    with pytest.raises(ValidationError, match="input 1"):
        fastreq.fastreq([Request("http://a/"), Request("http://b/", data=b"x", json=[1])],
                        backend=fake)
    with pytest.raises(ValidationError, match="some Request objects have a key"):
        fastreq.fastreq([Request("http://a/", key="a"), "http://b/"], backend=fake)
    assert fake.requests == []


def test_bad_item_in_a_generator_fails_only_that_input() -> None:
    fake = FakeBackend()
    gen = (u for u in ["http://a.example/", "gopher://x/", "http://c.example/"])
    with pytest.raises(fastreq.PartialFailureError) as info:
        fastreq.fastreq(gen, backend=fake)
    assert info.value.results == [{}, None, {}]
    assert isinstance(info.value.failures[0].error, ValidationError)
    assert len(fake.requests) == 2


def test_timeout_object_accepted() -> None:
    fake, _ = _run("http://a.example/", timeout=Timeout(connect=1, read=2, total=3))
    assert fake.requests[0].timeout == Timeout(connect=1, read=2, total=3)
    fake, _ = _run("http://a.example/", timeout=4)
    assert fake.requests[0].timeout == Timeout(total=4)


def test_callers_dicts_are_not_mutated() -> None:
    headers = {"X-A": "1"}
    cookies = {"c": "1"}
    params = {"p": "1"}
    _run(["http://a.example/", Request("http://b.example/", headers={"X-B": "2"})],
         headers=headers, cookies=cookies, params=params)
    assert headers == {"X-A": "1"} and cookies == {"c": "1"} and params == {"p": "1"}
