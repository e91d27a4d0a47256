"""``fastreq demo``: fetch a few thousand URLs from the embedded server and explain the result.

No internet needed: :class:`~fastreq._demo_server.DemoServer` runs on 127.0.0.1 in a
background thread of this process.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastreq._cli_fetch import BatchOutcome, run_batch
from fastreq._demo_server import DemoServer
from fastreq.backends import available_backends
from fastreq.utils.retry import RetryConfig

__all__ = ["DEMO_RETRIES", "Mix", "build_mix", "run_demo", "unexpected_outcomes"]

DEMO_RETRIES = 3
#: Short backoff so the intentional /fail URLs give up in a few tens of milliseconds.
_RETRY = RetryConfig(max_retries=DEMO_RETRIES, backoff_base=0.01, max_delay=0.05)
#: Route → the status it must end with; ``None``: it must fail (retries exhausted on 500).
_EXPECTED: dict[str, int | None] = {
    "item": 200, "slow": 200, "flaky": 200, "missing": 404, "fail": None,
}
_ORDER = ("item", "slow", "flaky", "missing", "fail")


@dataclass
class Mix:
    """The demo's inputs: ``urls[i]`` hits route ``kinds[i]``."""

    urls: list[str]
    kinds: list[str]

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.kinds)

    @property
    def expected_retries(self) -> int:
        counts = self.counts
        return counts["flaky"] + counts["fail"] * DEMO_RETRIES


def build_mix(server: DemoServer, count: int, seed: int = 0) -> Mix:
    """``count`` URLs, mostly ``/item``, ~5% slow, ~5% flaky, ~3% 404 and a handful of /fail.

    Below 10 URLs only ``/item`` is used. The mix is shuffled with ``seed`` (deterministic).
    """
    special = count >= 10
    sizes = {
        "slow": max(1, count * 5 // 100) if special else 0,
        "flaky": max(1, count * 5 // 100) if special else 0,
        "missing": max(1, count * 3 // 100) if special else 0,
        "fail": max(1, min(10, count // 400)) if special else 0,
    }
    sizes["item"] = count - sum(sizes.values())
    kinds = [kind for kind in _ORDER for _ in range(sizes[kind])]
    random.Random(seed).shuffle(kinds)
    # The index is the route's {n}: every /flaky/{n} is fresh, so it fails exactly once.
    urls = [server.url(f"/{kind}/{index}") for index, kind in enumerate(kinds)]
    return Mix(urls, kinds)


@contextmanager
def _progress(server: DemoServer, expected: int, enabled: bool) -> Iterator[None]:
    """A one-line live counter on stderr, from the server's hit count."""
    if not enabled:
        yield
        return
    done = threading.Event()
    started = time.perf_counter()

    def draw() -> None:
        while not done.wait(0.1):
            hits = server.hits
            rate = hits / max(time.perf_counter() - started, 1e-9)
            sys.stderr.write(f"\r  {hits}/{expected} HTTP requests served  {rate:,.0f}/s   ")
            sys.stderr.flush()

    thread = threading.Thread(target=draw, name="fastreq-demo-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write("\r" + " " * 60 + "\r")
        sys.stderr.flush()


def unexpected_outcomes(mix: Mix, outcome: BatchOutcome) -> list[str]:
    """One line per input whose outcome is not what its route must give."""
    problems: list[str] = []
    for index, kind in enumerate(mix.kinds):
        failure = outcome.failures.get(index)
        want = _EXPECTED[kind]
        if want is None:
            if failure is None:
                response = outcome.responses[index]
                status = response.status_code if response is not None else None
                problems.append(f"{mix.urls[index]}: expected a failure, got HTTP {status}")
            continue
        if failure is not None:
            problems.append(
                f"{mix.urls[index]}: {type(failure.error).__name__}: {failure.error}"
            )
            continue
        response = outcome.responses[index]
        if response is None or response.status_code != want:
            got = response.status_code if response is not None else None
            problems.append(f"{mix.urls[index]}: expected HTTP {want}, got {got}")
    return problems


def run_demo(*, count: int, concurrency: int, backend: str, rate_limit: float | None,
             progress: bool, echo: Callable[[str], None]) -> int:
    """Run the demo, print the summary with ``echo``; 0 if every outcome was as expected."""
    with DemoServer() as server:
        mix = build_mix(server, count)
        counts = mix.counts
        echo(f"fastreq demo: {count} URLs from an embedded server at {server.base_url} "
             "(no internet needed)")
        echo("  mix          " + "  ".join(
            f"{counts[kind]} /{kind}" for kind in _ORDER if counts[kind]))
        client_options = {
            "backend": backend, "concurrency": concurrency, "rate_limit": rate_limit,
            "retry": _RETRY, "timeout": 30.0,
        }
        with _progress(server, count + mix.expected_retries, progress):
            outcome = run_batch(mix.urls, client_options, {})
        served = server.hits
    tally = outcome.tally()
    picked = " (picked by --backend auto; installed: " + ", ".join(available_backends()) + ")"
    limit = f"{rate_limit:g} req/s" if rate_limit else "none"
    echo(f"  backend      {outcome.backend}{picked if backend == 'auto' else ''}")
    echo(f"  settings     concurrency {concurrency}, rate limit {limit}, "
         f"{DEMO_RETRIES} retries with 10-50 ms backoff")
    echo("")
    echo(f"  total        {tally.total}")
    echo(f"  succeeded    {tally.succeeded}")
    echo(f"  failed       {tally.failed}" + (f"  ({tally.error_text()})" if tally.failed else ""))
    echo(f"  statuses     {tally.status_text()}   (of failed inputs: their last response)")
    echo(f"  retries      {served - count}  (the server answered {served} HTTP requests "
         f"for {count} URLs)")
    rate = count / outcome.seconds if outcome.seconds > 0 else float("inf")
    echo(f"  wall time    {outcome.seconds:.2f} s   {rate:,.0f} URLs/s")
    echo("")
    problems = unexpected_outcomes(mix, outcome)
    if problems:
        echo(f"UNEXPECTED: {len(problems)} outcome(s) differ from what the server should give:")
        for line in problems[:10]:
            echo(f"  {line}")
        if len(problems) > 10:
            echo(f"  ... and {len(problems) - 10} more")
        return 1
    n_fail = counts["fail"]
    echo("OK: every outcome is as expected: 404s are results, flaky 503s were retried.")
    if n_fail:
        what = "failure is" if n_fail == 1 else f"{n_fail} failures are"
        echo(f"    The {what} /fail/*, which always answers 500: fastreq retried, gave up, "
             "went on.")
    echo("Next: fastreq fetch urls.txt -o results.jsonl   (fastreq fetch --help)")
    return 0
