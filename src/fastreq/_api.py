"""The one-call entry points: :func:`fastreq` (sync) and :func:`fastreq_async`; results as
they complete: :func:`fastreq_iter` (sync) and :func:`fastreq_stream` (async).

Both accept every :class:`~fastreq.FastRequests` option and every ``request()`` option.

Example::

    from fastreq import fastreq

    data = fastreq(["https://httpbin.org/json", "https://httpbin.org/uuid"])
    pages = fastreq(urls, concurrency=50, rate_limit=20, return_type="text")
    by_id = fastreq(urls, keys=ids, parse_func=lambda d: d["name"])
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from fastreq._iter import Handoff, iterate_in_thread
from fastreq._models import Result
from fastreq._options import FetchOptions
from fastreq._sync import run_sync
from fastreq.client import FastRequests, URLInput
from fastreq.exceptions import ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["fastreq", "fastreq_async", "fastreq_iter", "fastreq_stream"]

_CLIENT_OPTIONS = frozenset(inspect.signature(FastRequests.__init__).parameters) - {"self"}
_REQUEST_OPTIONS = frozenset(inspect.signature(FastRequests.request).parameters) - {
    "self",
    "urls",
}


def _split(options: FetchOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    client: dict[str, Any] = {}
    request: dict[str, Any] = {}
    for name, value in options.items():
        if name in _CLIENT_OPTIONS:
            client[name] = value
        elif name in _REQUEST_OPTIONS:
            request[name] = value
        else:
            known = ", ".join(sorted(_CLIENT_OPTIONS | _REQUEST_OPTIONS))
            raise ConfigurationError(f"unknown option {name!r}; known options: {known}")
    return client, request


async def fastreq_async(urls: URLInput, **options: Unpack[FetchOptions]) -> Any:
    """Fetch ``urls`` concurrently from async code; see :func:`fastreq` for the options.

    Example::

        results = await fastreq_async(urls, concurrency=100, return_type="text")
    """
    client_options, request_options = _split(options)
    async with FastRequests(**client_options) as client:
        return await client.request(urls, **request_options)


def fastreq(urls: URLInput, **options: Unpack[FetchOptions]) -> Any:
    """Fetch ``urls`` concurrently and return the results; works in scripts and notebooks.

    ``urls`` is one URL (→ one result), an iterable of URLs / :class:`~fastreq.Request`
    (→ a list in input order) or, with ``keys=[...]``, a dict key → result. Options: every
    :class:`~fastreq.FastRequests` argument (``backend``, ``concurrency``, ``max_retries``,
    ``rate_limit``, ``timeout``, ``headers``, ``proxies``...) and every ``request()`` argument
    (``method``, ``params``, ``data``, ``json``, ``keys``, ``parse_func``, ``return_type``...).

    Example::

        fastreq("https://api.example.com/users/1")            # -> {"id": 1, ...}
        fastreq(urls, return_none_on_failure=True)              # failed slots are None
    """
    _split(options)  # reject unknown options before starting a loop or thread
    return run_sync(lambda: fastreq_async(urls, **options))


async def fastreq_stream(urls: URLInput, **options: Unpack[FetchOptions]
                         ) -> AsyncGenerator[Result, None]:
    """Yield one :class:`~fastreq.Result` per input as it completes, from async code.

    The one-call form of :meth:`FastRequests.stream` (same options as :func:`fastreq`).

    Example::

        async for r in fastreq_stream(from_file("urls.txt"), journal="job.db"):
            print(r.index, r.status, r.ok)
    """
    client_options, request_options = _split(options)
    async with FastRequests(**client_options) as client:
        results = client.stream(urls, **request_options)
        async with contextlib.aclosing(results):
            async for result in results:
                yield result


def fastreq_iter(urls: URLInput, **options: Unpack[FetchOptions]) -> Generator[Result, None, None]:
    """Yield one :class:`~fastreq.Result` per input as it completes, from sync code.

    Completion order, each input exactly once; failures are results (``r.ok is False``).
    The fetching runs on a background thread and waits when you consume slowly, so memory
    stays bounded for any number of inputs. Stopping early (``break``) cancels the rest.
    ``urls``: a list, a generator, an async iterator, a :class:`pathlib.Path`, an open file
    or :func:`~fastreq.from_file`. Options: as :func:`fastreq`, plus ``journal="job.db"``
    to resume after a crash (see :meth:`FastRequests.stream`).

    Example::

        with open("out.jsonl", "w") as out:
            for r in fastreq_iter(from_file("urls.txt"), concurrency=100, journal="job.db"):
                out.write(json.dumps({"i": r.index, "status": r.status, "ok": r.ok}) + "\\n")
    """
    _split(options)  # unknown options fail here, not in the thread

    async def main(handoff: Handoff) -> None:
        results = fastreq_stream(urls, **options)
        async with contextlib.aclosing(results):
            async for result in results:
                await handoff.put(result)

    return iterate_in_thread(main)
