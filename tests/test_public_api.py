"""The front door: every public name comes from ``fastreq``; the option lists agree."""

from __future__ import annotations

import inspect

import fastreq
from fastreq import FastRequests
from fastreq._options import FetchOptions
from fastreq.config import DEFAULT_TIMEOUT


def test_all_is_sorted_and_importable() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, Classes, rest
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(fastreq.__all__) == sorted(fastreq.__all__, key=isort_style)
    assert len(set(fastreq.__all__)) == len(fastreq.__all__)
    for name in fastreq.__all__:
        assert getattr(fastreq, name) is not None


def test_fetch_options_match_client_and_request_signatures() -> None:
    client = set(inspect.signature(FastRequests.__init__).parameters) - {"self"}
    request = set(inspect.signature(FastRequests.request).parameters) - {"self", "urls"}
    assert set(FetchOptions.__annotations__) == client | request


def test_seed_client_defaults() -> None:
    params = inspect.signature(FastRequests.__init__).parameters
    expected = {
        "backend": "auto", "concurrency": 20, "max_retries": 3, "rate_limit": None,
        "rate_limit_burst": 5, "http2": True, "follow_redirects": True, "verify_ssl": True,
        "timeout": DEFAULT_TIMEOUT, "cookies": None, "headers": None, "random_user_agent": True,
        "random_proxy": False, "proxies": None, "debug": False, "verbose": True,
        "return_none_on_failure": False,
    }
    assert {name: params[name].default for name in expected} == expected


def test_parallel_requests_alias() -> None:
    assert fastreq.ParallelRequests is FastRequests


def test_py_typed_shipped() -> None:
    from importlib import resources

    assert resources.files("fastreq").joinpath("py.typed").is_file()
