"""Run one batch: every input through the executor, every outcome recorded exactly once.

Two schedulers: the plain worker pool (no per-host limits: the fastest path) and per-host
lanes (``per_host_concurrency`` / ``per_host_rate_limit`` / ``host_limits``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastreq._execute import Executor, HostContext
from fastreq._inputs import BadInput
from fastreq._lanes import HostGate, run_lanes
from fastreq._models import FailureDetails, ReturnType
from fastreq._pipeline import run_pool_async, run_workers
from fastreq._plan import Plan
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import ParseFuncError, PartialFailureError
from fastreq.utils.logging import get_logger
from fastreq.utils.progress import Progress
from fastreq.utils.proxies import bypasses_proxy

__all__ = [
    "BatchSetup", "ConfigFactory", "Emit", "extract_value", "host_of", "run_batch", "run_inputs",
]

_log = get_logger("batch")


def extract_value(response: NormalizedResponse, return_type: ReturnType) -> Any:
    """The result for one response, per ``return_type``."""
    if return_type is ReturnType.JSON:
        if response.is_json and response.content:
            return response.json()
        return response.text
    if return_type is ReturnType.TEXT:
        return response.text
    if return_type is ReturnType.CONTENT:
        return response.content
    return response


def host_of(url: str) -> str:
    """The lower-case host of an http(s) URL, without userinfo or port (fast, no urlsplit)."""
    start = url.find("//") + 2
    end = len(url)
    for sep in "/?#":
        pos = url.find(sep, start)
        if pos != -1 and pos < end:
            end = pos
    netloc = url[start:end]
    at = netloc.rfind("@")
    if at != -1:
        netloc = netloc[at + 1 :]
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1].lower()
    colon = netloc.find(":")
    return (netloc[:colon] if colon != -1 else netloc).lower()


ConfigFactory = Callable[[Any, int], RequestConfig]
#: ``emit(index, item, url, response, value, error, attempts, started)``: where one
#: input's outcome goes. It returns ``None`` or an awaitable to wait for (backpressure).
Emit = Callable[[int, Any, str, Any, Any, Any, int, float], Any]


@dataclass
class BatchSetup:
    """What a client hands to :func:`run_batch` for one call."""

    executor: Executor
    concurrency: int
    gate_for: Callable[[str], HostGate] | None  # set: per-host lanes
    needs_host: bool  # breaker or lanes need each input's host
    proxy_pool: bool  # requests without an explicit proxy go through the pool
    no_proxy: str | None
    progress: Progress
    #: wraps the plan's ``(item, index) -> RequestConfig`` (download_dir, stream_callback...)
    adapt_config: Callable[[ConfigFactory], ConfigFactory] | None = None
    #: wraps the outcome sink (download_dir finishes each input's file there)
    wrap_emit: Callable[[Emit], Emit] | None = None


async def run_batch(
    plan: Plan,
    setup: BatchSetup,
    rtype: ReturnType,
    parse_func: Callable[[Any], Any] | None,
) -> tuple[list[Any], list[FailureDetails]]:
    """Run ``plan``; return the values in input order and the failures by index."""
    failures: list[FailureDetails] = []
    count = plan.count
    results: list[Any] = [None] * count if count is not None else []
    source: Iterable[Any] = (
        enumerate(plan.items()) if count is not None else _growing(plan.items(), results)
    )
    key_for = plan.key_for

    def emit(index: int, item: Any, url: str, response: Any, value: Any, error: Any,
             attempts: int, started: float) -> None:
        if error is None:
            results[index] = value
            return
        failures.append(FailureDetails(index, key_for(index), url, error, attempts))
        _log.debug("input %d (%s) failed after %d attempt(s): %r", index, url, attempts, error)

    await run_inputs(plan, setup, rtype, parse_func, emit, source)
    failures.sort(key=lambda f: f.index)
    return results, failures


async def run_inputs(
    plan: Plan,
    setup: BatchSetup,
    rtype: ReturnType,
    parse_func: Callable[[Any], Any] | None,
    emit: Emit,
    source: Iterable[Any] | AsyncIterator[Any],
) -> None:
    """Handle every ``(index, item)`` of ``source``; each input's outcome goes to ``emit``.

    The one per-input handler of batch and stream mode. ``source`` may be an async
    iterator (then workers take turns awaiting it).
    """
    make_config = plan.config_factory()
    if plan.count is None:  # a lazy input: a file's unreadable line fails as that input
        make_config = _failing_bad_lines(make_config)
    if setup.adapt_config is not None:
        make_config = setup.adapt_config(make_config)
    if setup.wrap_emit is not None:
        emit = setup.wrap_emit(emit)
    send = setup.executor.sender
    progress = setup.progress if setup.progress.active else None
    needs_ctx = setup.needs_host or setup.proxy_pool
    no_proxy = setup.no_proxy
    now = time.perf_counter

    async def drain(inputs: Iterator[tuple[int, Any]], host: str | None = None,
                    token_taken: bool = False) -> None:
        """Handle each ``(index, item)`` of ``inputs`` to its outcome, in turn: a worker of
        the pool (one shared iterator: next() never awaits) or one input (``handle``)."""
        for index, item in inputs:
            attempts = 0
            response = value = error = None
            started = now()
            try:
                config = make_config(item, index)
                url = config.url
                ctx = None
                if needs_ctx:
                    item_host = host if host is not None else host_of(url)
                    gate = setup.gate_for(item_host) if setup.gate_for is not None else None
                    ctx = HostContext(
                        item_host,
                        gate.limiter if gate is not None else None,
                        token_taken,
                        setup.proxy_pool and config.proxy is None
                        and not bypasses_proxy(item_host, no_proxy),
                    )
                response, error, attempts = await send(config, ctx)
                if error is None:
                    value = extract_value(response, rtype)  # type: ignore[arg-type]
                    if parse_func is not None:
                        try:
                            value = parse_func(value)
                        except Exception as exc:
                            error = ParseFuncError(
                                f"parse_func raised {type(exc).__name__}: {exc}"
                            )
                            error.__cause__ = exc
                            value = None
            except Exception as exc:  # a lazily pulled input that fails validation, bad body
                error, value = exc, None
                url = str(item if isinstance(item, str) else getattr(item, "url", repr(item)))
            if progress is not None:
                progress.advance(error is not None)
            waiter = emit(index, item, url, response, value, error, attempts, started)
            if waiter is not None:
                await waiter

    async def handle(indexed: tuple[int, Any], host: str | None = None,
                     token_taken: bool = False) -> None:
        await drain(iter((indexed,)), host, token_taken)

    try:
        if setup.gate_for is None:
            workers = _workers(setup.concurrency, plan.count)
            if isinstance(source, AsyncIterator):
                await run_pool_async(source, handle, workers)
            else:
                shared = iter(source)
                await run_workers([drain(shared) for _ in range(workers)])
        else:
            await _run_lanes(source, setup, handle)
    finally:
        setup.progress.close()


async def _run_lanes(source: Iterable[Any] | AsyncIterator[Any], setup: BatchSetup,
                     handle: Callable[..., Awaitable[None]]) -> None:
    assert setup.gate_for is not None

    def item_host(indexed: tuple[int, Any]) -> str:
        item = indexed[1]
        return host_of(item if isinstance(item, str) else str(getattr(item, "url", "")))

    async def lane_handle(indexed: tuple[int, Any], host: str) -> None:
        await handle(indexed, host, True)

    cap = max(1000, 10 * setup.concurrency)  # inputs read ahead of the lanes, at most
    await run_lanes(source if isinstance(source, AsyncIterator) else iter(source), item_host,
                    setup.gate_for, lane_handle, setup.concurrency, cap)


def _failing_bad_lines(make: ConfigFactory) -> ConfigFactory:
    def make_config(item: Any, index: int) -> RequestConfig:
        if item.__class__ is BadInput:
            raise item.error
        return make(item, index)

    return make_config


def _workers(concurrency: int, count: int | None) -> int:
    return concurrency if count is None else max(1, min(concurrency, count))


def _growing(items: Iterable[Any], results: list[Any]) -> Any:
    """Index a lazy input, growing ``results`` by one slot per item pulled."""
    for index, item in enumerate(items):
        results.append(None)
        yield index, item


def shape_results(
    plan: Plan,
    results: list[Any],
    failures: list[FailureDetails],
    *,
    none_on_failure: bool,
    verbose: bool,
) -> Any:
    """The batch's answer: one value, a list in input order or a dict by key; raises
    :class:`PartialFailureError` (carrying it all) when something failed, unless
    ``none_on_failure``."""
    total = len(results)
    if plan.single:
        shaped: Any = results[0] if results else None
    elif plan.keys is not None:
        shaped = dict(zip(plan.keys, results, strict=True))
    else:
        shaped = results
    if failures:
        if not none_on_failure:
            raise PartialFailureError(shaped, failures, total) from failures[0].error
        if verbose:
            _log.warning(
                "%d of %d requests failed (their results are None); first: %s: %r",
                len(failures), total, failures[0].url, failures[0].error,
            )
    return shaped
