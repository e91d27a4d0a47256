"""Run one batch: every input through the executor, every outcome recorded exactly once.

Two schedulers: the plain worker pool (no per-host limits: the fastest path) and per-host
lanes (``per_host_concurrency`` / ``per_host_rate_limit`` / ``host_limits``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastreq._execute import Executor, HostContext
from fastreq._lanes import HostGate, run_lanes
from fastreq._models import FailureDetails, ReturnType
from fastreq._pipeline import run_pool
from fastreq._plan import Plan
from fastreq.backends.base import NormalizedResponse
from fastreq.exceptions import ParseFuncError
from fastreq.utils.logging import get_logger
from fastreq.utils.progress import Progress
from fastreq.utils.proxies import bypasses_proxy

__all__ = ["BatchSetup", "extract_value", "host_of", "run_batch"]

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


async def run_batch(
    plan: Plan,
    setup: BatchSetup,
    rtype: ReturnType,
    parse_func: Callable[[Any], Any] | None,
) -> tuple[list[Any], list[FailureDetails]]:
    make_config = plan.config_factory()
    failures: list[FailureDetails] = []
    count = plan.count
    results: list[Any] = [None] * count if count is not None else []
    source: Iterable[Any] = (
        enumerate(plan.items()) if count is not None else _growing(plan.items(), results)
    )
    key_for = plan.key_for
    send = setup.executor.send
    progress = setup.progress if setup.progress.active else None
    needs_ctx = setup.needs_host or setup.proxy_pool
    no_proxy = setup.no_proxy

    def fail(index: int, url: str, error: BaseException, attempts: int) -> None:
        failures.append(FailureDetails(index, key_for(index), url, error, attempts))
        _log.debug("input %d (%s) failed after %d attempt(s): %r", index, url, attempts, error)

    async def handle(indexed: tuple[int, Any], host: str | None = None,
                     token_taken: bool = False) -> None:
        index, item = indexed
        attempts = 0
        failed = True
        try:
            config = make_config(item, index)
            ctx = None
            if needs_ctx:
                host = host if host is not None else host_of(config.url)
                gate = setup.gate_for(host) if setup.gate_for is not None else None
                ctx = HostContext(
                    host,
                    gate.limiter if gate is not None else None,
                    token_taken,
                    setup.proxy_pool and config.proxy is None
                    and not bypasses_proxy(host, no_proxy),
                )
            response, error, attempts = await send(config, ctx)
            if error is not None:
                fail(index, config.url, error, attempts)
                return
            assert response is not None
            value = extract_value(response, rtype)
            if parse_func is not None:
                try:
                    value = parse_func(value)
                except Exception as exc:
                    err = ParseFuncError(f"parse_func raised {type(exc).__name__}: {exc}")
                    err.__cause__ = exc
                    fail(index, config.url, err, attempts)
                    return
            results[index] = value
            failed = False
        except Exception as exc:  # a lazily pulled input that fails validation, bad body...
            url = item if isinstance(item, str) else getattr(item, "url", repr(item))
            fail(index, str(url), exc, attempts)
        finally:
            if progress is not None:
                progress.advance(failed)

    try:
        if setup.gate_for is None:
            await run_pool(iter(source), handle, _workers(setup.concurrency, count))
        else:
            def item_host(indexed: tuple[int, Any]) -> str:
                item = indexed[1]
                return host_of(item if isinstance(item, str) else str(getattr(item, "url", "")))

            async def lane_handle(indexed: tuple[int, Any], host: str) -> None:
                await handle(indexed, host, True)

            await run_lanes(iter(source), item_host, setup.gate_for, lane_handle,
                            setup.concurrency, max(1000, 10 * setup.concurrency))
    finally:
        setup.progress.close()
    failures.sort(key=lambda f: f.index)
    return results, failures


def _workers(concurrency: int, count: int | None) -> int:
    return concurrency if count is None else max(1, min(concurrency, count))


def _growing(items: Iterable[Any], results: list[Any]) -> Any:
    """Index a lazy input, growing ``results`` by one slot per item pulled."""
    for index, item in enumerate(items):
        results.append(None)
        yield index, item
