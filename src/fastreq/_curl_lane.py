"""The curl fast lane: a whole batch on a dedicated libcurl I/O thread.

With ``backend="curl"`` a batch of plain ``GET``/``HEAD`` requests to ``http(s)://`` URLs (the
bulk-fetch case) costs ~30% less CPU per request (measured: ~16.7 against ~24 µs for a
small JSON GET) when one thread runs a ``CurlMulti`` perform()+select loop over the whole
batch (:mod:`fastreq._curl_lane_io`) than with a coroutine per request on the event loop.

The lane is taken only when the batch uses nothing it does not reproduce exactly (see
:func:`lane_plan`): results, failures, retries and attempts are the general path's. Every
response is finished in the lane as the curl backend finishes it (Content-Encoding decoded by
libcurl, ``max_body_size`` checked exactly, redirects followed hop by hop with the shared
policy of :mod:`fastreq.backends._redirects`); each request goes to the server once, as in the
general path. TLS is the backend's own (its ``ca_bundle``, ``verify_ssl``); on ``https://``
with HTTP/2 a transfer waits for a connection being set up to the same origin
(``CURLOPT_PIPEWAIT``) to multiplex on it, where the general path gates the first request
per origin (``Engine.gate``). Retry sleeps happen on the loop through the client's injected
``sleep``.

Results as they complete (``client.stream()``, ``fastreq_iter()``, a journal, the CLI's
``fetch``) come from the same lane when the call allows it: see :mod:`fastreq._curl_lane_feed`.

Known differences, all outside results: ``parse_func`` runs on the lane thread; a
``KeyboardInterrupt`` that stops the event loop without cancelling the batch leaves the
(daemon) thread to finish its in-flight transfers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastreq._batch import BatchSetup, run_batch
from fastreq._models import FailureDetails, Request, ReturnType
from fastreq._plan import Plan
from fastreq.utils.logging import get_logger

if TYPE_CHECKING:
    from fastreq._stream import StreamOptions
    from fastreq.client import FastRequests

__all__ = ["MIN_BATCH", "enabled", "items_fit", "lane_options", "lane_plan", "request_fits",
           "run_batch_fast", "stats"]

_log = get_logger("curl_lane")
#: smaller batches take the general path (a thread and a multi handle per batch)
MIN_BATCH = 16
_RTYPES = frozenset({ReturnType.JSON, ReturnType.TEXT, ReturnType.CONTENT, ReturnType.RESPONSE})
_METHODS = frozenset({"GET", "HEAD"})
#: how many batches (and inputs) went through the lane, redirect hops it followed, and
#: streams (results as they complete, :mod:`fastreq._curl_lane_feed`) it produced (tests, debug)
stats = {"batches": 0, "inputs": 0, "redirects": 0, "streams": 0}
#: ``False``: never take the lane (tests compare both paths; a switch while it is young)
enabled = True


def _plain_http(url: str) -> bool:
    """An ``http://`` or ``https://`` URL (the lane tells them apart by ``url[4]``)."""
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"


def lane_plan(client: FastRequests, plan: Plan, setup: BatchSetup, options: StreamOptions
              ) -> bool:
    """Whether this batch may run in the lane: every option is one it implements."""
    if not options.plain or setup.progress.active:
        return False
    if plan.count is None or plan.count < MIN_BATCH:
        return False
    return lane_options(client, plan, setup, options.rtype) and items_fit(plan)


def lane_options(client: FastRequests, plan: Plan, setup: BatchSetup, rtype: ReturnType
                 ) -> bool:
    """Whether the client, the call's options and the plan are ones the lane implements
    (the inputs aside; a journal, progress or download/stream options: the caller's)."""
    backend = client.backend
    if not enabled or backend.name != "curl":
        return False
    from fastreq.backends.curl import CurlBackend

    if type(backend) is not CurlBackend:  # a subclass may send differently
        return False
    if rtype not in _RTYPES:
        return False
    if (setup.gate_for is not None or setup.needs_host or setup.proxy_pool
            or setup.adapt_config is not None or setup.wrap_emit is not None):
        return False
    if client._limiter is not None or client._breaker is not None or client._proxy_pool:
        return False
    if client._jar or client._active != 1:  # cookies already stored / another batch running
        return False
    return (plan.method in _METHODS and plan.data is None and plan.json is None
            and plan.proxy is None)


def items_fit(plan: Plan) -> bool:
    """Every input of a (checked) list is one the lane sends."""
    if set(map(type, plan.items())) == {str}:  # Plan checked each: an http(s) URL
        return True
    method = plan.method
    return all(item.__class__ is str or (isinstance(item, Request) and request_fits(item, method))
               for item in plan.items())


def request_fits(item: Request, method: str) -> bool:
    """A (checked) :class:`Request` the lane sends: the plan's method, nothing of its own."""
    return (item.params is None and not item.headers and item.data is None
            and item.json is None and _plain_http(item.url)
            and (item.method is None or item.method.upper() == method))


async def run_batch_fast(
    client: FastRequests,
    plan: Plan,
    setup: BatchSetup,
    options: StreamOptions,
    parse_func: Callable[[Any], Any] | None,
) -> tuple[list[Any], list[FailureDetails]]:
    """:func:`~fastreq._batch.run_batch`, through the curl lane when the batch allows it."""
    if not lane_plan(client, plan, setup, options):
        return await run_batch(plan, setup, options.rtype, parse_func)
    return await _run_lane(client, plan, setup, options.rtype, parse_func)


async def _run_lane(
    client: FastRequests,
    plan: Plan,
    setup: BatchSetup,
    rtype: ReturnType,
    parse_func: Callable[[Any], Any] | None,
) -> tuple[list[Any], list[FailureDetails]]:
    from fastreq._curl_lane_thread import LaneThread

    count = plan.count
    assert count is not None
    results: list[Any] = [None] * count
    failures: list[FailureDetails] = []
    key_for = plan.key_for
    source: Iterator[tuple[int, Any]] = enumerate(plan.items())
    first = next(iter(plan.items()))
    template = plan.config_factory()(first, 0)

    def fail(index: int, url: str, error: BaseException, attempts: int) -> None:
        failures.append(FailureDetails(index, key_for(index), url, error, attempts))
        _log.debug("input %d (%s) failed after %d attempt(s): %r", index, url, attempts, error)

    runner = LaneThread(client, source, template, results, concurrency=setup.concurrency,
                        rtype=rtype, parse_func=parse_func, fail=fail, agents=plan._ua)
    stats["batches"] += 1
    stats["inputs"] += count
    _log.debug("curl lane: %d inputs, concurrency %d", count, setup.concurrency)
    runner.start()
    try:
        await runner.done
    finally:
        await runner.close()
    lane = runner.lane
    if lane.error is not None:
        raise lane.error
    stats["redirects"] += lane.redirects
    failures.sort(key=lambda f: f.index)
    return results, failures
