"""A raw asyncio stream server on 127.0.0.1 in its own thread: the base of the test servers
that speak bytes directly (fault server, forward proxy, SOCKS5 proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import weakref
from typing import Any

#: The upstream connections opened (by :meth:`StreamServer.connect`) for the client
#: connection being served in this task (and in the tasks it starts).
_UPSTREAMS: contextvars.ContextVar[list[asyncio.StreamWriter]] = contextvars.ContextVar(
    "_UPSTREAMS"
)


class StreamServer:
    """Starts on construction; ``port`` is set, ``stop()`` shuts it down.

    Subclasses set their own attributes *before* calling ``super().__init__()`` (the thread
    starts serving at once) and implement :meth:`handle`, one call per connection; they open
    upstream connections with :meth:`connect`. Every connection, client or upstream, is
    closed when its client's handler ends, however it ends (an error, or cancelled by
    ``stop()``), and ``stop()`` closes any still open: none is left to the garbage collector
    (a ResourceWarning, an error under ``filterwarnings = error``, in whichever test runs then).
    """

    thread_name = "test-stream-server"

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        # Every connection (a closed one leaves when collected); stop() aborts the open ones
        self._writers: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection(host, port)``, closed with the client connection that
        opened it."""
        reader, writer = await asyncio.open_connection(host, port)
        self._writers.add(writer)
        _UPSTREAMS.get().append(writer)
        return reader, writer

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- machinery -----------------------------------------------------------------------
    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        # Not a coroutine function: the writer is recorded at once, in connection_made, not
        # when the task asyncio makes of the returned coroutine first runs (stop() may come
        # in between).
        self._writers.add(writer)
        return self._serve_client(reader, writer)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstreams: list[asyncio.StreamWriter] = []
        _UPSTREAMS.set(upstreams)
        try:
            await self.handle(reader, writer)
        except asyncio.CancelledError:
            # stop(): this task is its own, top-level; ended quietly (asyncio would log a
            # cancelled client task as an "Exception in callback")
            pass
        finally:
            for w in (*upstreams, writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Every task, including a client's not yet started (its coroutine then never runs).
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for w in list(self._writers):  # a never-started client's, one still flushing...
            w.transport.abort()  # a no-op on a closed transport
        await asyncio.sleep(0)  # the transports' connection_lost callbacks run: sockets closed
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
