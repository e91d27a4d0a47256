"""Results as they complete: the engine behind ``client.stream()`` and ``fastreq_iter()``.

The batch's per-input handler runs unchanged; its sink builds a :class:`~fastreq.Result` and
puts it into a bounded :class:`asyncio.Queue`. When the consumer is slow the queue fills and
the workers wait on it (backpressure), so memory stays bounded whatever the input size. With
a journal, the stored outcomes are yielded first, then the inputs still to do are fetched.
With the curl backend an eligible call's outcomes come from the curl lane's I/O thread
(:mod:`fastreq._curl_lane_feed`), handed to the same sink.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fastreq._batch import BatchSetup, Emit
from fastreq._curl_lane_feed import run_inputs_fast
from fastreq._download import StreamCallback, to_callback, to_files
from fastreq._inputs import aenumerate, is_async_input, normalize_input
from fastreq._journal import HEAD_SIZE, Journal
from fastreq._journal_lane import lane_sink
from fastreq._journal_writer import Fragment
from fastreq._models import FailureDetails, Request, Result, ReturnType
from fastreq._plan import Plan, coerce_return_type
from fastreq.exceptions import ConfigurationError

if TYPE_CHECKING:
    from fastreq.client import FastRequests

__all__ = [
    "StreamOptions", "collect", "make_plan", "plan_options", "prepare", "stream_results",
]

_END: Any = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class StreamOptions:
    """The large-body and journal options of one call, checked together."""

    __slots__ = ("download_dir", "journal", "parse_func", "retry_failed", "rtype",
                 "stream_callback")

    def __init__(self, rtype: ReturnType, parse_func: Callable[[Any], Any] | None,
                 journal: str | os.PathLike[str] | None, retry_failed: bool,
                 download_dir: str | os.PathLike[str] | None,
                 stream_callback: StreamCallback | None) -> None:
        if stream_callback is not None and not callable(stream_callback):
            raise ConfigurationError(f"stream_callback must be callable, got {stream_callback!r}")
        if (rtype is ReturnType.STREAM) != (stream_callback is not None):
            raise ConfigurationError(
                'return_type="stream" and stream_callback=... go together: the callback '
                "gets each chunk as (chunk, index)"
            )
        if download_dir is not None and stream_callback is not None:
            raise ConfigurationError("give download_dir= or stream_callback=, not both")
        if parse_func is not None and (download_dir is not None or stream_callback is not None):
            raise ConfigurationError(
                "parse_func cannot be used with download_dir= or return_type='stream' "
                "(the body is not held in memory)"
            )
        if not isinstance(retry_failed, bool):
            raise ConfigurationError(f"retry_failed must be True or False, got {retry_failed!r}")
        if retry_failed and journal is None:
            raise ConfigurationError("retry_failed=True needs journal=...")
        self.rtype = rtype
        self.parse_func = parse_func
        self.journal = journal
        self.retry_failed = retry_failed
        self.download_dir = download_dir
        self.stream_callback = stream_callback

    @property
    def plain(self) -> bool:
        return self.journal is None and self.download_dir is None and self.stream_callback is None

    @property
    def restarting(self) -> bool:
        """Whether chunk sinks must hear of each attempt (download_dir, stream_callback)."""
        return self.download_dir is not None or self.stream_callback is not None

    def fill(self, setup: BatchSetup, key_for: Callable[[int], Hashable | None]) -> None:
        """Set ``setup``'s config / sink adapters for download_dir or stream_callback."""
        if self.download_dir is not None:
            setup.adapt_config, setup.wrap_emit = to_files(self.download_dir, key_for)
        elif self.stream_callback is not None:
            setup.adapt_config = to_callback(self.stream_callback)


def make_plan(client: FastRequests, urls: Any, request_options: dict[str, Any]
              ) -> tuple[Plan, Any]:
    """The plan of a call and its source of ``(index, item)`` (sync or async)."""
    urls = normalize_input(urls)
    if is_async_input(urls):
        if request_options.get("keys") is not None:
            raise ConfigurationError(
                "keys=[...] needs a list of inputs; an async input gives each Request its key"
            )
        plan = Plan(iter(()), client._defaults, **request_options)
        return plan, aenumerate(urls)
    plan = Plan(urls, client._defaults, **request_options)
    return plan, enumerate(plan.items())


async def stream_results(
    client: FastRequests, plan: Plan, source: Any, options: StreamOptions,
    queue_size: int | None = None,
) -> AsyncGenerator[Result, None]:
    """Yield one :class:`Result` per input as it completes (see ``FastRequests.stream``)."""
    journal = _open_journal(options)
    task: asyncio.Task[None] | None = None
    try:
        if journal is not None:
            source = await _check_head(journal, source)
            source = (journal.afilter(source) if isinstance(source, AsyncIterator)
                      else journal.filter(source))
        queue: asyncio.Queue[Any] = asyncio.Queue(queue_size or max(64, 2 * client.concurrency))
        key_for = plan.key_for
        record = journal.add if journal is not None else None
        record_json = journal.add_json if journal is not None and Fragment is not None else None

        def emit(index: int, item: Any, url: str, response: Any, value: Any, error: Any,
                 attempts: int, started: float, body: bytes | None = None) -> Any:
            key = _key(item, index, key_for)
            status = response.status_code if response is not None else None
            elapsed = perf_counter() - started
            if body is not None and record_json is not None:  # the lane's raw JSON body
                record_json(index, key, url, status, body, attempts, elapsed)
            elif record is not None:
                record(index, key, url, status, value, error, attempts, elapsed)
            result = Result(index, key, url, status, value, error, attempts, elapsed)
            if queue.full():
                return queue.put(result)
            queue.put_nowait(result)
            return None

        task = asyncio.ensure_future(_produce(client, plan, source, options, emit, queue))
        while True:
            if journal is not None and journal.pending_replay:
                for stored in journal.replay():
                    yield stored
            item = await queue.get()
            if item is _END:
                break
            if item.__class__ is _Failed:
                raise item.error
            yield item
        if journal is not None:
            for stored in journal.replay():
                yield stored
    finally:
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if journal is not None:
            journal.close()


async def collect(client: FastRequests, plan: Plan, source: Any, options: StreamOptions
                  ) -> tuple[list[Any], list[FailureDetails]]:
    """``request()`` with a journal or an async input: values by index, failures.

    No stream in between: each outcome goes straight into the values (and the journal);
    the journal's stored outcomes are filled in at the end. From the curl lane, the
    outcomes come in bulk (:func:`~fastreq._journal_lane.lane_sink`).
    """
    values: list[Any] = [None] * plan.count if plan.count is not None else []
    failures: list[FailureDetails] = []
    journal = _open_journal(options)
    try:
        if journal is not None:
            source = await _check_head(journal, source)
            source = (journal.afilter(source) if isinstance(source, AsyncIterator)
                      else journal.filter(source))
        record = journal.add if journal is not None else None
        key_for = plan.key_for

        def emit(index: int, item: Any, url: str, response: Any, value: Any, error: Any,
                 attempts: int, started: float) -> None:
            if index >= len(values):
                values.extend([None] * (index + 1 - len(values)))
            key = None
            if error is None:
                values[index] = value
            else:
                key = _key(item, index, key_for)
                failures.append(FailureDetails(index, key, url, error, attempts))
            if record is not None:
                record(index, key if error is not None else _key(item, index, key_for), url,
                       response.status_code if response is not None else None, value, error,
                       attempts, perf_counter() - started)

        async with client._session():
            setup = client._batch_setup(plan.count, restarting=options.restarting)
            options.fill(setup, plan.key_for)
            bulk = (lane_sink(journal, values, failures, plan.keys)
                    if journal is not None else None)
            await run_inputs_fast(client, plan, setup, options, emit, source, bulk)
        if journal is not None:
            for r in journal.replay():
                if r.index >= len(values):
                    values.extend([None] * (r.index + 1 - len(values)))
                if r.error is None:
                    values[r.index] = r.value
                else:
                    failures.append(FailureDetails(r.index, r.key, r.url, r.error, r.attempts))
    finally:
        if journal is not None:
            journal.close()
    failures.sort(key=lambda f: f.index)
    return values, failures


def _key(item: Any, index: int, key_for: Callable[[int], Hashable | None]) -> Any:
    return item.key if item.__class__ is Request and item.key is not None else key_for(index)


def _open_journal(options: StreamOptions) -> Journal | None:
    if options.journal is None:
        return None
    return Journal(options.journal, return_type=options.rtype.value,
                   retry_failed=options.retry_failed)


_PLAN_OPTIONS = (
    "method", "params", "data", "json", "headers", "cookies", "timeout", "proxy", "keys",
)


def plan_options(given: dict[str, Any], unset: object) -> dict[str, Any]:
    """The Plan's arguments among a request()/stream() call's ``locals()``."""
    options = {name: given[name] for name in _PLAN_OPTIONS}
    options["timeout_given"] = given["timeout"] is not unset
    return options


def prepare(return_type: Any, parse_func: Any, journal: Any, retry_failed: Any,
            download_dir: Any, stream_callback: Any) -> StreamOptions:
    rtype = coerce_return_type(return_type)
    if parse_func is not None and not callable(parse_func):
        raise ConfigurationError(f"parse_func must be callable, got {parse_func!r}")
    return StreamOptions(rtype, parse_func, journal, retry_failed, download_dir, stream_callback)


async def _produce(client: FastRequests, plan: Plan, source: Any, options: StreamOptions,
                   emit: Emit, queue: asyncio.Queue[Any]) -> None:
    try:
        async with client._session():
            setup = client._batch_setup(plan.count, restarting=options.restarting)
            options.fill(setup, plan.key_for)
            await run_inputs_fast(client, plan, setup, options, emit, source,
                                  emit_body=emit if options.journal is not None else None)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # handed to the consumer, raised there
        await queue.put(_Failed(exc))
        return
    await queue.put(_END)


async def _check_head(journal: Journal, source: Any) -> Any:
    """Peek the first inputs, check them against the journal; the source, unchanged."""
    if isinstance(source, AsyncIterator):
        head = [indexed async for indexed in _atake(source, HEAD_SIZE)]
        journal.check_head([item for _, item in head])
        return _achain(head, source)
    head = list(itertools.islice(source, HEAD_SIZE))
    journal.check_head([item for _, item in head])
    return itertools.chain(head, source)


async def _atake(source: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    for _ in range(n):
        try:
            yield await source.__anext__()
        except StopAsyncIteration:
            return


async def _achain(head: Iterable[Any], rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    for item in head:
        yield item
    async for item in rest:
        yield item
