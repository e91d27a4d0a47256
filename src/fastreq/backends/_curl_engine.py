"""The libcurl multi engine behind :class:`~fastreq.backends.curl.CurlBackend`.

One :class:`Engine` per event loop drives one ``pycurl.CurlMulti`` with libcurl's socket
interface (``CURLMOPT_SOCKETFUNCTION`` + ``curl_multi_socket_action``), never blocking the loop
and never polling on a timer.

How the hot path stays cheap (per request a few Python calls, nothing allocated on the loop):

- Sockets: on Linux every socket libcurl asks about goes into ONE private ``epoll`` set and the
  loop watches only that set's descriptor (one ``add_reader`` for the engine's lifetime). A
  wake-up drains every ready socket at once (``epoll.poll(0)`` then one ``socket_action`` per
  socket). A keep-alive connection going idle stays registered ("parked", see
  ``_on_socket_epoll``), so reusing it costs one ``epoll_ctl`` and no loop handle at all.
  Elsewhere (or with ``poller="loop"``) sockets are watched with ``loop.add_reader`` /
  ``add_writer`` directly (measured ~1.6x slower per request on uvloop).
- Timer: instead of a ``CURLMOPT_TIMERFUNCTION`` callback (a Python call from C on every
  ``add_handle``), the engine asks ``curl_multi_timeout()`` once after each batch of work and
  keeps ONE loop timer, re-armed only when libcurl's deadline moves earlier. A timer that fires
  early does a harmless ``socket_action(CURL_SOCKET_TIMEOUT)`` and re-syncs. New requests are
  started by one coalesced ``call_soon`` per loop iteration, however many were added.
- Completions: ``info_read`` runs only when ``socket_action`` reports fewer running transfers
  than there are handles in the multi, and then drains every finished transfer in one batch;
  each waiting request's future is resolved with the curl result code.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import Callable
from typing import Any

import pycurl

from fastreq.backends._curl_handle import Easy
from fastreq.backends._curl_origins import OriginGates, wake_all

__all__ = ["CLOSED_CODE", "Engine"]

_SOCKET_TIMEOUT: int = pycurl.SOCKET_TIMEOUT
_CSELECT_IN: int = pycurl.CSELECT_IN
_CSELECT_OUT: int = pycurl.CSELECT_OUT
_CSELECT_ERR: int = pycurl.CSELECT_ERR
_POLL_IN: int = pycurl.POLL_IN
_POLL_OUT: int = pycurl.POLL_OUT
_POLL_REMOVE: int = pycurl.POLL_REMOVE

#: Result code given to requests still in flight when the engine is closed.
CLOSED_CODE = -1

_HAVE_EPOLL = hasattr(select, "epoll")
_MAX_EVENTS = 256
_MAX_FREE_HANDLES = 1024
_PAUSE_CONT: int = pycurl.PAUSE_CONT
_WRITE_ERROR: int = pycurl.E_WRITE_ERROR


def _epoll_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    if not _HAVE_EPOLL:  # pragma: no cover - non-Linux
        return (), ()
    ein, eout, eerr, ehup = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP
    # libcurl's CURL_POLL_{NONE,IN,OUT,INOUT} -> epoll interest mask
    interest = (0, ein, eout, ein | eout)
    # epoll event bits (low 5: IN, PRI, OUT, ERR, HUP) -> CURL_CSELECT_* for socket_action
    flags = []
    for ev in range(32):
        f = 0
        if ev & (ein | eerr | ehup):
            f |= _CSELECT_IN
        if ev & (eout | eerr):
            f |= _CSELECT_OUT
        if ev & eerr:
            f |= _CSELECT_ERR
        flags.append(f)
    return interest, tuple(flags)


_EP_INTEREST, _EP_FLAGS = _epoll_tables()


class Engine(OriginGates):
    """Drives one ``CurlMulti`` on one event loop (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_host_connections: int = 0,
        multiplex: bool = True,
        poller: str = "auto",
    ) -> None:
        self.loop = loop
        self.closed = False
        self._free: list[Easy] = []
        self._busy: dict[Any, Easy] = {}  # pycurl handle -> Easy, for those in the multi
        self._in_multi = 0
        self._kick_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._watched: dict[int, int] = {}
        # https origin -> None (a connection to it was established: new transfers can see
        # whether it multiplexes) or the requests waiting for its first connection
        self._origins: dict[str, list[asyncio.Future[None]] | None] = {}
        m = pycurl.CurlMulti()
        self._multi = m
        self._socket_action: Callable[[int, int], tuple[int, int]] = m.socket_action
        if multiplex:
            m.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        if max_host_connections > 0:
            m.setopt(pycurl.M_MAX_HOST_CONNECTIONS, max_host_connections)
        use_epoll = _HAVE_EPOLL if poller == "auto" else poller == "epoll"
        self._ep: Any = None
        if use_epoll:
            self._ep = select.epoll()
            self._ep_poll = self._ep.poll
            m.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket_epoll)
            loop.add_reader(self._ep.fileno(), self._on_epoll_ready)
        else:
            m.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket_loop)

    # -- handles -------------------------------------------------------------------------
    def acquire(self) -> Easy:
        """A free easy handle (a new one when the pool is empty)."""
        free = self._free
        return free.pop() if free else Easy(self.resume)

    def release(self, h: Easy) -> None:
        """Give a handle back after its response was read."""
        h.chunks.clear()
        h.hdrs.clear()
        h.sent = -1
        if self.closed or len(self._free) >= _MAX_FREE_HANDLES:
            h.close()
        else:
            self._free.append(h)

    def add(self, h: Easy, fut: asyncio.Future[int]) -> None:
        """Start a configured handle; ``fut`` gets the curl result code when it finishes."""
        h.fut = fut
        self._multi.add_handle(h.curl)
        self._busy[h.curl] = h
        self._in_multi += 1
        if self._kick_handle is None:
            self._kick_handle = self.loop.call_soon(self._on_kick)

    def abandon(self, h: Easy) -> None:
        """The request awaiting ``h`` was cancelled: take ``h`` out of the multi, pool it."""
        h.key = None  # interrupted mid-transfer: start from reset() next time
        if self._busy.pop(h.curl, None) is not None:
            h.fut = None
            if not self.closed:
                self._in_multi -= 1
                self._multi.remove_handle(h.curl)
                self._sync_timer()
        self.release(h)

    def resume(self, h: Easy, failed: bool) -> None:
        """The awaitable an async ``on_chunk`` returned is done: unpause ``h``'s transfer,
        or (``failed``: it raised) end it with ``CURLE_WRITE_ERROR``."""
        if self.closed or h.fut is None:
            return
        if not failed:
            try:
                h.curl.pause(_PAUSE_CONT)  # may deliver the kept data right away
            except pycurl.error as exc:
                code, msg = exc.args if len(exc.args) == 2 else (_WRITE_ERROR, str(exc))
                self._fail(h, code, msg)
        else:
            self._fail(h, _WRITE_ERROR, "on_chunk failed")
        self._sync_timer()

    def _fail(self, h: Easy, code: int, msg: str) -> None:
        """End ``h``'s transfer now with result ``code``."""
        if self._busy.pop(h.curl, None) is None:
            return
        self._in_multi -= 1
        self._multi.remove_handle(h.curl)
        h.errmsg = msg
        fut, h.fut = h.fut, None
        if fut is not None and not fut.done():
            fut.set_result(code)

    # -- libcurl -> loop: sockets --------------------------------------------------------
    def _on_socket_epoll(self, what: int, fd: int, multi: object, socketp: object) -> None:
        # ``watched[fd]``: > 0 the epoll interest libcurl asked for; < 0 "parked": libcurl
        # said POLL_REMOVE (the connection went idle in its cache) but the registration is
        # kept, so reusing the connection costs one epoll_ctl instead of two. A parked fd is
        # always re-validated with EPOLL_CTL_MOD (libcurl may have closed it and the number
        # been reused; epoll forgets closed descriptors by itself), and a readiness event on
        # a parked fd (the server closed the idle connection) unregisters it.
        watched = self._watched
        old = watched.get(fd, 0)
        if what == _POLL_REMOVE:
            if old > 0:
                watched[fd] = -old
            return
        mask = _EP_INTEREST[what]
        if old == mask:
            return
        watched[fd] = mask
        ep = self._ep
        try:
            if old == 0:
                try:
                    ep.register(fd, mask)
                except FileExistsError:  # pragma: no cover - stale registration
                    ep.modify(fd, mask)
            else:
                try:
                    ep.modify(fd, mask)
                except FileNotFoundError:  # closed and reused since it was parked
                    ep.register(fd, mask)
        except (OSError, ValueError):  # pragma: no cover - closed fd / closed epoll
            watched.pop(fd, None)

    def _on_epoll_ready(self) -> None:
        running = -1
        action = self._socket_action
        flags = _EP_FLAGS
        watched = self._watched
        for fd, ev in self._ep_poll(0, _MAX_EVENTS):
            if watched.get(fd, 0) > 0:
                try:
                    running = action(fd, flags[ev & 31])[1]
                except pycurl.error:  # pragma: no cover - CURLM_BAD_SOCKET & co: keep going
                    running = 0
            else:  # parked (idle in libcurl's cache) or unknown: stop watching it
                watched.pop(fd, None)
                with contextlib.suppress(OSError, ValueError):
                    self._ep.unregister(fd)
        if running >= 0:
            self._settle(running)

    def _on_socket_loop(self, what: int, fd: int, multi: object, socketp: object) -> None:
        loop = self.loop
        old = self._watched.get(fd, 0)
        new = 0 if what == _POLL_REMOVE else what
        if new == old:
            return
        try:
            if new & _POLL_IN and not old & _POLL_IN:
                loop.add_reader(fd, self._on_fd, fd, _CSELECT_IN)
            elif old & _POLL_IN and not new & _POLL_IN:
                loop.remove_reader(fd)
            if new & _POLL_OUT and not old & _POLL_OUT:
                loop.add_writer(fd, self._on_fd, fd, _CSELECT_OUT)
            elif old & _POLL_OUT and not new & _POLL_OUT:
                loop.remove_writer(fd)
        except (OSError, ValueError, RuntimeError):  # pragma: no cover - closed loop / fd
            pass
        if new:
            self._watched[fd] = new
        else:
            self._watched.pop(fd, None)

    def _on_fd(self, fd: int, flags: int) -> None:
        self._settle(self._socket_action(fd, flags)[1])

    # -- libcurl -> loop: time -----------------------------------------------------------
    def _on_kick(self) -> None:
        self._kick_handle = None
        self._settle(self._socket_action(_SOCKET_TIMEOUT, 0)[1])

    def _on_timer(self) -> None:
        self._timer = None
        self._settle(self._socket_action(_SOCKET_TIMEOUT, 0)[1])

    def _sync_timer(self) -> None:
        ms: int = self._multi.timeout()
        if ms < 0:
            return  # nothing pending; a leftover timer fires once, harmlessly
        if ms == 0:
            if self._kick_handle is None:
                self._kick_handle = self.loop.call_soon(self._on_kick)
            return
        when = self.loop.time() + ms / 1000.0
        timer = self._timer
        if timer is not None:
            if when >= self._timer_when:
                return  # the armed timer fires first; it re-syncs then
            timer.cancel()
        self._timer = self.loop.call_at(when, self._on_timer)
        self._timer_when = when

    # -- completions ---------------------------------------------------------------------
    def _settle(self, running: int) -> None:
        if running < self._in_multi:
            self._drain()
        self._sync_timer()

    def _drain(self) -> None:
        multi = self._multi
        busy = self._busy
        while True:
            queued, ok, failed = multi.info_read()
            for c in ok:
                multi.remove_handle(c)
                h = busy.pop(c, None)
                if h is None:  # pragma: no cover - abandoned already
                    continue
                fut = h.fut
                h.fut = None
                code = h.result(0)
                if fut is not None and not fut.done():
                    fut.set_result(code)
            for c, code, msg in failed:
                multi.remove_handle(c)
                h = busy.pop(c, None)
                if h is None:  # pragma: no cover - abandoned already
                    continue
                code = h.result(code, msg)
                fut = h.fut
                h.fut = None
                if fut is not None and not fut.done():
                    fut.set_result(code)
            self._in_multi -= len(ok) + len(failed)
            if not queued:
                return

    # -- shutdown ------------------------------------------------------------------------
    def close(self) -> None:
        """Fail what is in flight, close every handle and the multi, leave the loop clean."""
        if self.closed:
            return
        self.closed = True
        loop_usable = not self.loop.is_closed()
        if self._kick_handle is not None:
            self._kick_handle.cancel()
            self._kick_handle = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for c, h in list(self._busy.items()):
            with contextlib.suppress(pycurl.error):
                self._multi.remove_handle(c)
            fut, h.fut = h.fut, None
            h.errmsg = "the backend was closed while the request was in flight"
            if fut is not None and not fut.done() and loop_usable:
                fut.set_result(CLOSED_CODE)
        self._busy.clear()
        self._in_multi = 0
        # Closing the multi closes cached connections; their sockets leave the poller first.
        self._multi.close()
        if self._ep is not None:
            if loop_usable:
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    self.loop.remove_reader(self._ep.fileno())
            self._ep.close()
        elif loop_usable:
            for fd in list(self._watched):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    self.loop.remove_reader(fd)
                    self.loop.remove_writer(fd)
        self._watched.clear()
        for waiters in self._origins.values():
            if waiters and loop_usable:
                wake_all(waiters)
        self._origins.clear()
        for h in self._free:
            h.close()
        self._free.clear()
