"""What ``fastreq fetch`` does, apart from option parsing: read URLs, run the batch, write JSONL.

Also the tally and error naming shared with ``fastreq demo``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from fastreq._models import FailureDetails
from fastreq._sync import run_sync
from fastreq.backends.base import NormalizedResponse
from fastreq.client import FastRequests
from fastreq.exceptions import (
    PartialFailureError,
    ResponseDecodeError,
    RetryExhaustedError,
    ValidationError,
)
from fastreq.utils.validators import validate_url

__all__ = [
    "BatchOutcome",
    "Tally",
    "error_kind",
    "parse_header",
    "read_urls",
    "run_batch",
    "write_jsonl",
]


def read_urls(lines: Iterable[str], source: str) -> list[str]:
    """URLs one per line; blank lines and ``#`` comments skipped; each URL validated.

    A bad URL raises :class:`ValidationError` naming ``source`` and the line number.
    """
    urls: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            validate_url(line)
        except ValidationError as exc:
            raise ValidationError(f"{source}, line {number}: {exc}") from None
        urls.append(line)
    return urls


def parse_header(value: str) -> tuple[str, str]:
    """``"Name: value"`` → ``("Name", "value")``; :class:`ValidationError` without a colon."""
    name, sep, rest = value.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValidationError(f"header must look like 'Name: value', got {value!r}")
    return name, rest.strip()


def error_kind(error: BaseException) -> str:
    """A short name for an error: its class, plus the cause for retries that ran out."""
    name = type(error).__name__
    kind = getattr(error, "kind", None)  # a failure read back from a journal
    if name == "JournaledError" and isinstance(kind, str) and kind:
        return kind
    if isinstance(error, RetryExhaustedError):
        if error.last_response is not None:
            return f"{name} (HTTP {error.last_response.status_code})"
        if error.last_error is not None:
            return f"{name} ({type(error.last_error).__name__})"
    return name


@dataclass
class Tally:
    """Counts for a summary: outcomes, statuses (including the last one of failed inputs)."""

    total: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def succeeded(self) -> int:
        return self.total - self.failed

    def add(self, response: NormalizedResponse | None, error: BaseException | None) -> None:
        self.total += 1
        if response is not None:
            self.statuses[response.status_code] += 1
        if error is not None:
            self.failed += 1
            self.errors[error_kind(error)] += 1

    def add_outcome(self, status: int | None, error: BaseException | None) -> None:
        """Count one streamed result (``status``: the last response's, if any)."""
        self.total += 1
        if status is not None:
            self.statuses[status] += 1
        if error is not None:
            self.failed += 1
            self.errors[error_kind(error)] += 1

    def status_text(self) -> str:
        return ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items())) or "none"

    def error_text(self) -> str:
        return ", ".join(f"{kind}: {n}" for kind, n in self.errors.most_common()) or "none"


@dataclass
class BatchOutcome:
    """A finished batch: one response or ``None`` per input, failures by index, timings."""

    backend: str
    responses: list[NormalizedResponse | None]
    failures: dict[int, FailureDetails]
    seconds: float

    def response_of(self, index: int) -> NormalizedResponse | None:
        """The response of input ``index``; for a failure, the last one if there was one."""
        failure = self.failures.get(index)
        if failure is not None:
            response: NormalizedResponse | None = failure.response
            return response
        return self.responses[index]

    def tally(self) -> Tally:
        tally = Tally()
        for index in range(len(self.responses)):
            failure = self.failures.get(index)
            tally.add(self.response_of(index), failure.error if failure is not None else None)
        return tally


def run_batch(urls: list[str], client_options: dict[str, Any],
              request_options: dict[str, Any]) -> BatchOutcome:
    """Fetch ``urls`` with one :class:`FastRequests`; every input ends up in the outcome."""

    async def go() -> BatchOutcome:
        async with FastRequests(**client_options) as client:
            started = time.perf_counter()
            try:
                results = await client.request(urls, return_type="response", **request_options)
                failures: list[FailureDetails] = []
            except PartialFailureError as exc:
                results, failures = exc.results, exc.failures
            seconds = time.perf_counter() - started
            return BatchOutcome(client.backend.name, list(results),
                                {f.index: f for f in failures}, seconds)

    return run_sync(go)


def _body(response: NormalizedResponse) -> Any:
    if response.is_json and response.content:
        try:
            return response.json()
        except ResponseDecodeError:
            pass
    return response.text


def record(outcome: BatchOutcome, index: int, url: str, *, body: bool = True) -> dict[str, Any]:
    """The JSON line of input ``index``."""
    response = outcome.response_of(index)
    failure = outcome.failures.get(index)
    return {
        "index": index,
        "url": url,
        "status": response.status_code if response is not None else None,
        "elapsed": response.elapsed if response is not None else None,
        # The batch API reports attempts for failures only; never guess for successes.
        "attempts": failure.attempts if failure is not None else None,
        "error": f"{type(failure.error).__name__}: {failure.error}" if failure else None,
        "body": _body(response) if (body and response is not None) else None,
    }


def write_jsonl(out: IO[bytes], outcome: BatchOutcome, urls: list[str], *,
                body: bool = True) -> None:
    """One JSON line per input, in input order, UTF-8."""
    for index, url in enumerate(urls):
        line = json.dumps(record(outcome, index, url, body=body), ensure_ascii=False,
                          separators=(",", ":"))
        out.write(line.encode("utf-8", errors="replace") + b"\n")
