"""The curl fast lane's I/O thread: a ``CurlMulti`` perform()+select loop over reused handles.

The thread pulls ``(index, item)`` from the batch's iterator, sends each input, and per
completion decides what the general path's :class:`~fastreq._execute.Executor` and
``run_inputs`` would: retry (after the loop has slept through the client's injected ``sleep``),
fail (the curl backend's own error mapping) or a value (extracted and parsed here). Values go
straight into the results list; only failures, retries and the end travel to the loop. In feed
mode (a stream, :mod:`fastreq._curl_lane_feed`) inputs come in chunks from the loop and every
outcome goes back to it (``out``), and no new transfer starts while ``limit`` outcomes wait;
in bulk mode (``request(list, journal=...)``) it reads the list itself and builds the journal
rows of the outcomes it finished inline (``rows``).

Every completion is finished as the curl backend finishes it (see
:mod:`fastreq._curl_lane_done`): libcurl decodes any Content-Encoding, ``max_body_size`` is
exact, redirects are followed hop by hop on the lane's handles (the next hop's config applied
by the backend's own option setting), and no request is ever sent twice but a retry.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any

import pycurl

from fastreq._curl_lane_done import Fail, Finish, Hop, LaneOutcomes, Retry
from fastreq._models import ReturnType
from fastreq.backends._common import build_url, with_implied_headers
from fastreq.backends._curl_handle import Easy
from fastreq.backends._curl_options import set_headers
from fastreq.backends._redirects import RedirectChain
from fastreq.backends.base import RequestConfig, _loads, is_json_content_type
from fastreq.exceptions import FastRequestsError
from fastreq.utils.cookies import CookieJar
from fastreq.utils.retry import RetryPolicy
from fastreq.utils.validators import to_ascii_url

__all__ = ["LaneIO"]

_RESPONSE_CODE = pycurl.RESPONSE_CODE
_CONTENT_TYPE = pycurl.CONTENT_TYPE
_URL = pycurl.URL
_USERAGENT = pycurl.USERAGENT
_PIPEWAIT = pycurl.PIPEWAIT
_JSON = ReturnType.JSON
_CALL_MULTI_PERFORM = pycurl.E_CALL_MULTI_PERFORM
_END_OF_BLOCK = b"\r\n"  # the empty line ending a block of header lines
_TICK = 0.05  # longest select()/wait, so stop() is noticed quickly
_JSON_TYPES: dict[str | None, bool] = {None: False, "": False}
#: ``Easy.key`` of a lane handle holding the batch template's options (PIPEWAIT off / on);
#: ``None`` (what ``apply_all`` leaves, e.g. after a redirect hop): apply the template again
_PLAIN = ("lane",)
_WAIT = ("lane", "pipewait")

#: a transfer: handle, index, job (input, User-Agent[, started: feed mode]), input URL, URL
#: sent, attempt, and for a redirect hop (the chain, the hop's config), else None
Entry = tuple[Easy, int, tuple[Any, ...], str, str, int,
              tuple[RedirectChain, RequestConfig] | None]


def _nothing() -> None:
    pass


def _is_json(content_type: str | None) -> bool:
    known = _JSON_TYPES.get(content_type)
    if known is None:
        known = is_json_content_type(content_type or "")
        if len(_JSON_TYPES) < 256:
            _JSON_TYPES[content_type] = known
    return known


class LaneIO(LaneOutcomes):
    """One batch's transfers on a private ``CurlMulti``, run by :meth:`run` in a thread."""

    def __init__(
        self,
        source: Iterator[tuple[int, Any]],
        template: RequestConfig,
        results: list[Any],
        *,
        concurrency: int,
        rtype: ReturnType,
        parse_func: Callable[[Any], Any] | None,
        policy: RetryPolicy,
        statuses: frozenset[int],
        agents: list[str] | None,
        rnd: Callable[[], float],
        jar: CookieJar | None,
        max_host_connections: int,
        multiplex: bool,
        pipewait: bool,
        fail: Fail,
        retry: Retry,
        apply: Callable[[Easy, RequestConfig, str], None],
        finish: Finish,
    ) -> None:
        self.source = source
        self.template = template
        self.results = results
        self.concurrency = concurrency
        self.rtype = rtype
        self.parse_func = parse_func
        self.policy = policy
        self.statuses = statuses
        self.agents = agents  # the User-Agent pool (checked: no CR/LF), or None: fixed
        self.rnd = rnd
        self.jar = jar
        self.max_host_connections = max_host_connections
        self.multiplex = multiplex
        self.pipewait = pipewait  # https transfers wait to multiplex (h2 on, as Engine.gate)
        self.fail = fail
        self.retry = retry
        self.apply = apply  # the curl backend's own option setting (its slow path)
        self.finish = finish  # and its own response / error for a finished transfer
        self.stopped = False
        self.error: BaseException | None = None
        self.redirects = 0  # hops followed (tests, debug)
        self.resubmitted: collections.deque[tuple[int, Any, int]] = collections.deque()
        #: next hops to send: (index, job, input URL, attempt, chain, hop config)
        self.hops: collections.deque[Hop] = collections.deque()
        self._wake = threading.Condition()
        self._sleeping = 0  # inputs handed to the loop to sleep before a retry
        self._cookies = False  # the jar got cookies during this batch: send them
        self.out = None  # feed mode (see _curl_lane_feed): set before run()
        self.chunks: collections.deque[list[tuple[int, Any]]] = collections.deque()
        self.closed = True  # feed mode: no more chunks will come
        self.limit = 0  # feed mode: at most this many outcomes undelivered, else no new input
        self.signaled = False  # feed mode: the loop has been told to look (see signal())
        #: feed mode: outcomes waiting before the loop is told (more: fewer wake-ups; a
        #: caller that waits for the end anyway drains the rest then, or on a timer)
        self.batch_at = 1
        #: bulk mode with a journal (see _journal_lane): an input given as a plain URL whose
        #: JSON body parsed inline gets its value into ``results`` and its journal row,
        #: ready, into ``rows`` (its body as ``fragment(body)``); ``row_bytes``: the bodies'
        #: bytes so far (only the thread writes it)
        self.rows: collections.deque[tuple[Any, ...]] | None = None
        self.fragment: Callable[[bytes], Any] = bytes
        self.row_bytes = 0
        self.taken = 0  # feed mode: inputs taken from chunks
        self.notify: Callable[[], None] = _nothing  # feed mode: wakes the loop's pump

    def signal(self) -> None:
        """Feed mode: wake the loop (outcomes to deliver, inputs wanted)."""
        self.signaled = True
        self.notify()

    # -- loop side -------------------------------------------------------------------------
    def resubmit(self, index: int, job: Any, attempts: int) -> None:
        """A retry's sleep is over: send ``job`` again (attempt ``attempts + 1``)."""
        with self._wake:
            self.resubmitted.append((index, job, attempts))
            self._wake.notify()

    def feed(self, chunk: list[tuple[int, Any]] | None) -> None:
        """Feed mode: more inputs (``None``: no more will come)."""
        with self._wake:
            if chunk is None:
                self.closed = True
            else:
                self.chunks.append(chunk)
            self._wake.notify()

    def poke(self) -> None:
        """Feed mode: the loop took outcomes (room for new transfers again)."""
        with self._wake:
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self.stopped = True
            self._wake.notify()

    # -- the thread ------------------------------------------------------------------------
    def run(self) -> None:
        multi = pycurl.CurlMulti()
        handles: list[Easy] = []
        try:
            if self.multiplex:
                multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
            if self.max_host_connections:
                multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, self.max_host_connections)
            self._loop(multi, handles)
        except BaseException as exc:  # reported on the loop, never lost in the thread
            self.error = exc
        finally:
            for h in handles:
                with contextlib.suppress(pycurl.error):
                    multi.remove_handle(h.curl)
                h.close()
            multi.close()

    def _prepare(self, h: Easy, key: tuple[str, ...]) -> None:
        """Give ``h`` the template's options (unless it has them) and PIPEWAIT per ``key``."""
        if h.key is None:
            self.apply(h, self.template, self.template.url)
        h.setopt(_PIPEWAIT, 1 if key is _WAIT else 0)
        h.key = key

    def _loop(self, multi: Any, handles: list[Easy]) -> None:
        free: list[Easy] = []
        busy: dict[Any, Entry] = {}
        add, remove, perform, info_read = (
            multi.add_handle, multi.remove_handle, multi.perform, multi.info_read
        )
        source, params = self.source, self.template.params
        agents, rnd = self.agents, self.rnd
        n_agents = len(agents) if agents else 0
        resubmitted, results, concurrency = self.resubmitted, self.results, self.concurrency
        hops, pipewait = self.hops, self.pipewait
        statuses, parse = self.statuses, self.parse_func
        fast = self.rtype is _JSON  # the common case, finished inline below
        json_types, loads, jar = _JSON_TYPES, _loads, self.jar
        out = self.out  # feed mode: outcomes for the loop, else None (batch mode)
        feed, limit, chunks, now = out is not None, self.limit, self.chunks, perf_counter
        batch_at, rows, fragment, nbytes = self.batch_at, self.rows, self.fragment, 0
        exhausted = False
        room = concurrency
        while not self.stopped:
            if feed:
                if not self.signaled and (len(out) >= batch_at  # type: ignore[arg-type]
                                          or (rows is not None and len(rows) >= batch_at)):
                    self.signal()
                if exhausted and chunks:
                    source, exhausted = self._next_chunk(), False
                # backpressure: no new transfer while the loop has not taken enough outcomes
                room = concurrency if len(out) < limit else 0  # type: ignore[arg-type]
            # start transfers: redirect hops first, then retries, then new inputs
            while len(busy) < room:
                if hops:
                    self._start_hop(free, handles, busy, add)
                    continue
                if resubmitted:
                    index, job, attempts = resubmitted.popleft()
                    self._sleeping -= 1
                    item, ua = job[0], job[1]
                elif exhausted:
                    break
                else:
                    try:
                        index, item = next(source)
                    except StopIteration:
                        if feed and chunks:
                            source = self._next_chunk()
                            continue
                        if feed and not self.closed and not self.signaled:
                            self.signal()  # starved: inputs wanted
                        exhausted = True
                        break
                    attempts = 0
                    # UserAgentPool.random(), inline: one pick per input, kept for retries
                    ua = agents[int(rnd() * n_agents)] if agents else ""
                    job = (item, ua, now()) if feed else (item, ua)
                h = free.pop() if free else self._new_handle(handles)
                raw = item if item.__class__ is str else item.url
                url = raw if raw.isascii() else to_ascii_url(raw)
                key = _WAIT if pipewait and url[4] != ":" else _PLAIN  # https: "https:"
                if h.key is not key:
                    self._prepare(h, key)
                sent = build_url(url, params) if params else url
                h.chunks.clear()
                h.hdrs.clear()
                setopt = h.setopt
                if ua:
                    setopt(_USERAGENT, ua)
                if self._cookies:
                    self._set_cookies(h, url)
                setopt(_URL, sent)
                c = h.curl
                busy[c] = (h, index, job, url, sent, attempts + 1, None)
                add(c)
            if not busy:
                if (exhausted and not self._sleeping and not hops
                        and (not feed or (self.closed and not chunks))):
                    return
                with self._wake:  # until something can start (or the tick: stopped?)
                    if not self.stopped and not (room and (resubmitted or hops or chunks)):
                        self._wake.wait(_TICK)
                continue
            while perform()[0] == _CALL_MULTI_PERFORM:
                pass
            while True:
                queued, ok, failed = info_read()
                for c in ok:
                    remove(c)
                    entry = busy.pop(c)
                    h = entry[0]
                    free.append(h)
                    if fast:  # a plain 2xx JSON body: what extract_value() does, inline
                        getinfo = h.getinfo
                        status = getinfo(_RESPONSE_CODE)
                        body = b"".join(h.chunks)
                        cap = h.cap
                        # one block of header lines (no 1xx interim block, no trailers) and,
                        # with a jar, no Set-Cookie: else _done() finishes it
                        if (200 <= status < 300 and status not in statuses and body
                                and h.hdrs.count(_END_OF_BLOCK) == 1
                                and (jar is None  # find(): `in` tries an int first
                                     or b"".join(h.hdrs).lower().find(b"set-cookie") < 0)
                                and (cap is None or len(body) <= cap)):
                            content_type = getinfo(_CONTENT_TYPE)
                            is_json = json_types.get(content_type)
                            if is_json is None:
                                is_json = _is_json(content_type)
                            if is_json:
                                try:
                                    value = loads(body)
                                except ValueError:
                                    pass  # the general path's error, from _done()
                                else:
                                    if parse is not None:
                                        self._parsed(parse, value, entry[1], entry[2], entry[3],
                                                     status, entry[5])
                                    elif out is None:
                                        results[entry[1]] = value
                                    elif rows is not None and entry[2][0].__class__ is str:
                                        results[entry[1]] = value  # and the journal's row
                                        nbytes += len(body)
                                        rows.append((entry[1], None, entry[3], status, 1, None,
                                                     entry[5], now() - entry[2][2], "j",
                                                     fragment(body)))
                                    else:  # emit's arguments (status: the loop's to wrap)
                                        job = entry[2]  # and the body (a journal keeps it)
                                        out.append((entry[1], job[0], entry[3], status, value,
                                                    None, entry[5], job[2], body))
                                    continue
                    self._done(0, "", *entry)
                for c, code, message in failed:
                    remove(c)
                    entry = busy.pop(c)
                    free.append(entry[0])
                    self._done(code, message, *entry)
                if not queued:
                    break
            if rows is not None:
                self.row_bytes = nbytes
                if len(rows) >= batch_at and not self.signaled:
                    self.signal()
            if feed and len(out) >= batch_at and not self.signaled:  # type: ignore[arg-type]
                self.signal()  # before select(): the loop delivers them meanwhile
            if busy and not hops and (len(busy) >= room or (exhausted and not resubmitted)):
                timeout = multi.timeout()
                multi.select(_TICK if timeout < 0 else min(timeout / 1000, _TICK))

    def _next_chunk(self) -> Iterator[tuple[int, Any]]:
        """Feed mode: the next chunk of inputs the loop handed over."""
        chunk = self.chunks.popleft()
        self.taken += len(chunk)
        if not self.signaled:
            self.signal()  # the loop tops the feed up
        return iter(chunk)

    def _new_handle(self, handles: list[Easy]) -> Easy:
        h = Easy()
        handles.append(h)
        return h

    def _start_hop(self, free: list[Easy], handles: list[Easy], busy: dict[Any, Entry],
                   add: Callable[[Any], None]) -> None:
        """Send the next redirect hop: its config applied as the backend applies it."""
        index, job, url, attempts, chain, config = self.hops.popleft()
        h = free.pop() if free else self._new_handle(handles)
        sent = config.url  # a hop has no params: the Location is a whole URL
        h.chunks.clear()
        h.hdrs.clear()
        try:
            self.apply(h, config, sent)  # reset() first: h.key is None afterwards
        except FastRequestsError as exc:  # the backend's _configure raises it the same way
            h.key = None
            free.append(h)
            self._error(exc, index, job, url, attempts)
            return
        h.key = None  # whatever happened, the template goes on again before its next input
        if self.pipewait and sent[4] != ":":
            h.setopt(_PIPEWAIT, 1)
        self.redirects += 1
        busy[h.curl] = (h, index, job, url, sent, attempts, (chain, config))
        add(h.curl)

    def _set_cookies(self, h: Easy, url: str) -> None:
        """What the Executor does per attempt once the jar holds cookies."""
        assert self.jar is not None
        base = self.template.cookies
        from_jar = self.jar.for_url(url)
        cookies = ({**from_jar, **base} if base else from_jar) if from_jar else base
        if cookies != h.cookies:
            set_headers(h.setopt, with_implied_headers(h.headers, cookies, None))
            h.cookies = dict(cookies) if cookies is not None else None
