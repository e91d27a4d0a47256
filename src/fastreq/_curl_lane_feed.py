"""The curl lane as the producer of results as they complete.

``client.stream()``, ``fastreq_iter()``, ``request(..., journal=...)`` and the CLI's ``fetch``
hand each outcome to an ``emit`` sink (a :class:`~fastreq.Result` into a bounded queue, a
journal row...). When the call allows the lane (:func:`fits`), :func:`run_inputs_fast` runs
it instead of :func:`~fastreq._batch.run_inputs`, with the same ``emit`` called the same way:

- the loop reads the source (any sync iterator of ``(index, item)``: a list, a generator, a
  file's lines, a journal's filter) a bounded number of inputs ahead of the lane's thread,
  in chunks, so the source is never read whole and the journal stays on the loop;
- a lazily read input is checked here as the general path's handler checks it: a bad one is
  that input's failure (emitted at once); one the lane does not send (a ``Request`` with its
  own headers, body...) ends the lane's part: once its inputs are done the general path
  takes the rest, from that input on;
- the thread hands completed outcomes back in batches (one wake-up of the loop for many);
  the loop's pump calls ``emit`` for each (progress advanced first, as ``run_inputs`` does)
  and awaits what it returns (the consumer's queue is full): while the lane holds
  :attr:`LaneIO.limit` undelivered outcomes it starts no new transfer (backpressure);
- cancelling the pump (the consumer broke out, ``aclose()``) stops and joins the thread;
- a caller that takes outcomes in bulk (``request(list, journal=...)``: values into a list,
  rows into the journal) gives a :class:`BulkSink`: each handed-back batch goes to it at
  once, as ``emit``'s arguments plus the raw JSON body (see :data:`Batch`), no call per
  outcome; or, for an outcome the thread finished inline, as the journal row it built.
  With a list (every input checked already) the thread then reads the source itself, as
  the batch lane does (no chunks fed, no backpressure: the outcomes are small tuples, the
  values are kept anyway), and wakes the loop once per :data:`BULK_ROWS` outcomes; the
  loop also takes what is there every :data:`BULK_SECONDS` (a journal's batch age).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fastreq import _curl_lane
from fastreq._batch import BatchSetup, Emit, run_inputs
from fastreq._curl_lane import MIN_BATCH, items_fit, lane_options, request_fits
from fastreq._inputs import BadInput
from fastreq._models import Request
from fastreq._plan import Plan
from fastreq.utils.logging import get_logger

if TYPE_CHECKING:
    from fastreq._stream import StreamOptions
    from fastreq.client import FastRequests

__all__ = ["BULK_ROWS", "BULK_SECONDS", "Batch", "BulkSink", "fits", "run_inputs_fast"]

#: takes a batch of outcomes, each ``(index, item, url, status, value, error, attempts,
#: started, body)``: ``status`` an ``int``, a response or ``None``; ``body`` the raw bytes
#: ``value`` was parsed from (return_type json, no parse_func, the lane's inline JSON
#: path), else ``None``
Batch = Callable[[list[tuple[Any, ...]]], None]
#: bulk mode (see the module docstring): outcomes per wake-up of the loop, and its longest
#: wait (the journal's BATCH_ROWS and BATCH_SECONDS: a batch of rows per wake-up)
BULK_ROWS = 1000
BULK_SECONDS = 0.5


class BulkSink:
    """How a caller takes outcomes in bulk: ``take`` gets each batch (:data:`Batch`). With
    ``add_rows`` (bulk mode, a list), a plain-URL input whose JSON body the thread parsed
    inline has its value written into ``values`` by the thread and its journal row built
    there (the body as ``fragment(body)``); the rows go to ``add_rows(rows, size)``
    (``size``: their bodies' bytes) in bulk."""

    __slots__ = ("add_rows", "fragment", "take", "values")

    def __init__(self, take: Batch, values: list[Any] | None = None,
                 add_rows: Callable[[list[tuple[Any, ...]], int], None] | None = None,
                 fragment: Callable[[bytes], Any] = bytes) -> None:
        self.take = take
        self.values = values
        self.add_rows = add_rows
        self.fragment = fragment

_log = get_logger("curl_lane")
_PROBE_URL = "http://localhost/"  # the template's URL: never sent (each transfer sets its own)


class _Status:
    """What ``emit`` reads of a response the lane finished inline: its status code."""

    __slots__ = ("status_code",)

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def fits(client: FastRequests, plan: Plan, setup: BatchSetup, options: StreamOptions,
         source: Any) -> bool:
    """Whether this call's outcomes may come from the lane (inputs read lazily are checked
    one by one as they come, see the module docstring)."""
    if options.download_dir is not None or options.stream_callback is not None:
        return False
    if isinstance(source, AsyncIterator) or not isinstance(source, Iterable):
        return False
    if plan.count is not None and (plan.count < MIN_BATCH or not items_fit(plan)):
        return False
    return lane_options(client, plan, setup, options.rtype)


async def run_inputs_fast(client: FastRequests, plan: Plan, setup: BatchSetup,
                          options: StreamOptions, emit: Emit, source: Any,
                          bulk: BulkSink | None = None,
                          emit_body: Callable[..., Any] | None = None) -> None:
    """:func:`~fastreq._batch.run_inputs`, through the curl lane when the call allows it
    (then ``bulk``, if given, takes the lane's outcomes in bulk; ``emit`` the others; or
    ``emit_body``, if given, each lane outcome: ``emit``'s arguments and the raw JSON body,
    see :data:`Batch`)."""
    if not fits(client, plan, setup, options, source):
        await run_inputs(plan, setup, options.rtype, options.parse_func, emit, source)
        return
    if bulk is not None and plan.count is not None:
        await _run_bulk(client, plan, setup, options, bulk, iter(source))
        return
    batch = bulk.take if bulk is not None else None
    rest = await _Pump(client, plan, setup, options, emit, iter(source), batch, emit_body).run()
    if rest is not None:  # an input the lane does not send: the general path from there on
        await run_inputs(plan, setup, options.rtype, options.parse_func, emit, rest)


async def _run_bulk(client: FastRequests, plan: Plan, setup: BatchSetup,
                    options: StreamOptions, bulk: BulkSink, source: Iterator[tuple[int, Any]]
                    ) -> None:
    """A list's inputs read by the thread, its outcomes handed to ``bulk`` in bulk."""
    from fastreq._curl_lane_thread import LaneThread

    template = plan.config_factory()(_PROBE_URL, 0)
    add_rows, values = bulk.add_rows, bulk.values
    results = values if add_rows is not None and values is not None else []
    runner = LaneThread(client, source, template, results, concurrency=setup.concurrency,
                        rtype=options.rtype, parse_func=options.parse_func, fail=_unused,
                        agents=plan._ua)
    lane, wake = runner.lane, asyncio.Event()
    out = runner.deliver(wake)
    lane.limit = sys.maxsize  # (lane.closed: no chunks will come, the source is all)
    progress = setup.progress if setup.progress.active else None
    lane.batch_at = BULK_ROWS if progress is None else MIN_BATCH  # (progress: kept moving)
    rows = None
    if add_rows is not None:
        rows = lane.rows = collections.deque()
        lane.fragment = bulk.fragment
    take, seen = bulk.take, 0
    _curl_lane.stats["streams"] += 1
    try:
        runner.start()
        while True:
            lane.signaled = False
            if out:
                outcomes = _drain(out)
                if progress is not None:
                    for outcome in outcomes:
                        progress.advance(outcome[5] is not None)
                take(outcomes)
            if rows and add_rows is not None:
                ready = _drain(rows)
                if progress is not None:
                    for _ in ready:
                        progress.advance(False)
                total = lane.row_bytes
                add_rows(ready, total - seen)
                seen = total
            if runner.done.done() and not out and not rows:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), BULK_SECONDS)
            wake.clear()
    finally:
        await runner.close()
        setup.progress.close()
    if lane.error is not None:
        raise lane.error
    _curl_lane.stats["redirects"] += lane.redirects


def _drain(queue: collections.deque[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What ``queue`` holds now (the thread only appends): one C loop, no Python per item."""
    return list(itertools.starmap(queue.popleft, itertools.repeat((), len(queue))))


class _Pump:
    """The loop's side of one stream lane: feeds inputs, delivers outcomes."""

    def __init__(self, client: FastRequests, plan: Plan, setup: BatchSetup,
                 options: StreamOptions, emit: Emit, source: Iterator[tuple[int, Any]],
                 batch: Batch | None = None, emit_body: Callable[..., Any] | None = None
                 ) -> None:
        from fastreq._curl_lane_thread import LaneThread

        self.plan = plan
        self.setup = setup
        self.emit = emit
        self.batch = batch
        self.emit_body = emit_body
        self.source = source
        self.lazy = plan.count is None
        self.progress = setup.progress if setup.progress.active else None
        concurrency = setup.concurrency
        #: inputs read ahead of the thread, at most (a bounded read of the source)
        self.high = max(64, 2 * concurrency)
        self.fed = 0
        self.ended = False  # the source is exhausted (or the general path takes the rest)
        self.handoff: tuple[int, Any] | None = None
        self.statuses: dict[int, _Status] = {}
        self.wake = asyncio.Event()
        template = plan.config_factory()(_PROBE_URL, 0)
        self.runner = runner = LaneThread(
            client, iter(()), template, [], concurrency=concurrency, rtype=options.rtype,
            parse_func=options.parse_func, fail=_unused, agents=plan._ua,
        )
        lane = self.lane = runner.lane
        self.out = runner.deliver(self.wake)
        lane.closed = False
        lane.limit = 2 * concurrency

    async def run(self) -> Iterator[tuple[int, Any]] | None:
        """Every input through the lane; the rest of the source when the general path must
        take over (``None``: all done)."""
        runner, lane, out = self.runner, self.lane, self.out
        _curl_lane.stats["streams"] += 1
        handed_over = False
        try:
            await self._refill()
            runner.start()
            while True:
                lane.signaled = False
                if out:
                    await self._deliver(out)
                    lane.poke()
                if not self.ended:
                    await self._refill()
                if runner.done.done() and not out:
                    break
                await self.wake.wait()
                self.wake.clear()
            handed_over = self.handoff is not None
        finally:
            await runner.close()
            if not handed_over:
                self.setup.progress.close()  # as run_inputs does (else it does, later)
        if lane.error is not None:
            raise lane.error
        _curl_lane.stats["redirects"] += lane.redirects
        if self.handoff is not None:
            return itertools.chain((self.handoff,), self.source)
        return None

    async def _deliver(self, out: collections.deque[tuple[Any, ...]]) -> None:
        emit, progress, statuses = self.emit, self.progress, self.statuses
        emit_body = self.emit_body
        popleft = out.popleft
        if self.batch is not None:
            outcomes = _drain(out)
            if progress is not None:
                for outcome in outcomes:
                    progress.advance(outcome[5] is not None)
            self.batch(outcomes)
            return
        while out:
            index, item, url, response, value, error, attempts, started, body = popleft()
            if response.__class__ is int:
                status = response
                response = statuses.get(status)
                if response is None:
                    response = statuses[status] = _Status(status)
            if progress is not None:
                progress.advance(error is not None)
            if emit_body is None:
                waiter = emit(index, item, url, response, value, error, attempts, started)
            else:
                waiter = emit_body(index, item, url, response, value, error, attempts, started,
                                   body)
            if waiter is not None:
                await waiter

    async def _refill(self) -> None:
        """Read inputs until the thread has ``high`` of them ahead (checking lazy ones)."""
        want = self.high - (self.fed - self.lane.taken)
        if want <= 0:
            return
        chunk: list[tuple[int, Any]] = []
        source, lazy = self.source, self.lazy
        while len(chunk) < want:
            try:
                indexed = next(source)
            except StopIteration:
                self.ended = True
                break
            if lazy:
                index, item = indexed
                started = perf_counter()
                try:
                    fits_lane = self._check(item, index)
                except Exception as exc:  # run_inputs' handler: that input's failure
                    url = str(item if isinstance(item, str) else getattr(item, "url", repr(item)))
                    if self.progress is not None:
                        self.progress.advance(True)
                    waiter = self.emit(index, item, url, None, None, exc, 0, started)
                    if waiter is not None:
                        await waiter
                    continue
                if not fits_lane:
                    self.handoff = indexed
                    self.ended = True
                    _log.debug("curl lane: input %d needs the general path, which takes the "
                               "rest", index)
                    break
            chunk.append(indexed)
        if chunk:
            self.fed += len(chunk)
            self.lane.feed(chunk)
        if self.ended:
            self.lane.feed(None)

    def _check(self, item: Any, index: int) -> bool:
        """A lazily read input checked as the plan's config factory checks it (raises as it
        does); whether the lane sends it."""
        if item.__class__ is BadInput:
            raise item.error
        self.plan._check_item(item, index)
        if item.__class__ is str:
            return True
        return isinstance(item, Request) and request_fits(item, self.plan.method)


def _unused(index: int, url: str, error: BaseException, attempts: int) -> None:
    raise AssertionError("feed mode reports failures as outcomes")  # pragma: no cover

