"""What every benchmark client does alike: check a response, count outcomes, drive
``n`` requests by ``conc`` async workers, run a coroutine on the loop a client names."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    loads = json.loads

Spec = dict[str, Any]
Outcome = dict[str, Any]  # errors, first_error, nbytes, loop


class BadResponse(Exception):
    pass


def check(spec: Spec, status: int, body: bytes, keep: Callable[[Any], Any]) -> int:
    """The body's size if the response is what every client must get, else BadResponse.

    What fastreq returns for the response (the parsed JSON; a 1 MiB body's length, as the
    fastreq rows' ``parse_func=len``) goes to ``keep``: a raw peer keeps every result, as
    fastreq hands back a list of them (see :func:`keeper`)."""
    if status != 200:
        raise BadResponse(f"HTTP {status}")
    if spec["kind"] == "json":
        value = loads(body)
        if not value:
            raise BadResponse("empty JSON")
        keep(value)
    elif len(body) != spec["expect_len"]:
        raise BadResponse(f"{len(body)} bytes, expected {spec['expect_len']}")
    else:
        keep(len(body))
    return len(body)


def _discard(value: Any) -> None:
    pass


def keeper(spec: Spec) -> Callable[[Any], Any]:
    """Where a raw peer puts each result: a list kept to the end of the run (the same output
    as fastreq's: every parsed result, alive at once, which costs garbage-collector time), or
    nowhere with ``spec["discard"]`` (``run.py --raw-discards``: the peers' old behaviour)."""
    if spec.get("discard"):
        return _discard
    kept: list[Any] = []
    return kept.append


def make_outcome(errors: int, first: str, nbytes: int, loop: str) -> Outcome:
    return {"errors": errors, "first_error": first, "nbytes": nbytes, "loop": loop}


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def workers(n: int, conc: int, one: Callable[[], Awaitable[int]]) -> Outcome:
    """``n`` calls of ``one()`` by ``conc`` workers; counts errors and bytes."""
    remaining = n
    errors = nbytes = 0
    first = ""

    async def worker() -> None:
        nonlocal remaining, errors, nbytes, first
        while remaining > 0:
            remaining -= 1
            try:
                size = await one()  # not `nbytes += await ...`: that loses updates
                nbytes += size
            except Exception as exc:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:300]

    await asyncio.gather(*(worker() for _ in range(min(conc, n))))
    return make_outcome(errors, first, nbytes, loop_name())


def run_async(factory: Callable[[], Awaitable[Outcome]], loop: str) -> Outcome:
    if loop == "uvloop":
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    elif loop == "fastreq":  # whatever fastreq picks: uvloop when installed
        from fastreq._sync import new_event_loop

        loop_factory = new_event_loop
    else:
        loop_factory = asyncio.new_event_loop
    event_loop = loop_factory()
    try:
        return event_loop.run_until_complete(factory())
    finally:
        try:
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        finally:
            event_loop.close()

