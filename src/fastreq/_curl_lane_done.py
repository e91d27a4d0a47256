"""The curl fast lane's completions: each finished transfer as the curl backend finishes it.

:class:`LaneOutcomes` is the half of :class:`~fastreq._curl_lane_io.LaneIO` that decides, per
completion, what the engine, ``CurlBackend.request()``, the Executor and ``run_inputs`` would:

- the body is decoded by libcurl (any Content-Encoding) and ``max_body_size`` is checked
  exactly at completion, as ``Engine._drain`` does (``CURLOPT_MAXFILESIZE_LARGE`` has slack);
  the response or error then comes from the backend's own ``_finish`` (error 63 is its
  :class:`~fastreq.exceptions.ResponseDecodeError`, a redirect's cut body no error);
- a redirect is followed hop by hop with :class:`~fastreq.backends._redirects.RedirectChain`
  (the ``total`` timeout shared by the hops, ``max_redirects``, a bad Location, credentials
  dropped on a change of origin): the next hop's :class:`RequestConfig` is queued for the I/O
  loop, which applies it to a handle through the backend's option setting. Nothing is ever
  sent twice but a retry the policy decided, which (as in the general path) starts again
  from the input's own URL;
- a 1xx interim response is never a completion (libcurl reads on to the final response); its
  header lines come first in the handle's header list and are skipped (``last_block``);
- then cookies go to the jar, a retry status is retried, the value extracted and parsed.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastreq._batch import extract_value
from fastreq._models import ReturnType
from fastreq.backends._curl_handle import Easy
from fastreq.backends._redirects import REDIRECT_CODES, RedirectChain
from fastreq.backends.base import NormalizedResponse, RequestConfig
from fastreq.exceptions import (
    BackendError,
    FastRequestsError,
    ParseFuncError,
    RetryExhaustedError,
)
from fastreq.utils.cookies import CookieJar
from fastreq.utils.retry import RetryPolicy

__all__ = ["Fail", "Finish", "Hop", "LaneOutcomes", "Retry"]

_TOO_MANY_REDIRECTS = 47  # the code of the curl backend's TooManyRedirectsError

#: ``fail(index, url, error, attempts)``; ``retry(index, job, attempts, delay)`` (``job``:
#: opaque, handed back to :meth:`LaneIO.resubmit`)
Fail = Callable[[int, str, BaseException, int], None]
Retry = Callable[[int, Any, int, float], None]
#: the curl backend's ``_finish(handle, code, url, config)``: the response, or raises
Finish = Callable[[Easy, int, str, RequestConfig], NormalizedResponse]
#: a redirect hop to send: index, job (input, User-Agent), input URL, attempt, chain, config
Hop = tuple[int, tuple[Any, ...], str, int, RedirectChain, RequestConfig]


class LaneOutcomes:
    """What to do with each finished transfer (the state is :class:`LaneIO`'s)."""

    template: RequestConfig
    results: list[Any]
    #: feed mode (a stream): each outcome as ``emit``'s arguments and the raw JSON body the
    #: value was parsed from (``None`` unless it was), for the loop (else None)
    out: collections.deque[tuple[Any, ...]] | None
    rtype: ReturnType
    parse_func: Callable[[Any], Any] | None
    policy: RetryPolicy
    statuses: frozenset[int]
    agents: list[str] | None
    jar: CookieJar | None
    fail: Fail
    retry: Retry
    finish: Finish
    hops: collections.deque[Hop]
    resubmitted: collections.deque[tuple[int, Any, int]]
    _sleeping: int
    _cookies: bool

    def _first_config(self, h: Easy, url: str, ua: str) -> RequestConfig:
        """The config the general path sent this input's first hop with."""
        template = self.template
        headers = template.headers
        if self.agents:  # Plan.config_factory: the picked User-Agent over the base headers
            headers = dict(headers) if headers else {}
            headers["User-Agent"] = ua
        cookies = dict(h.cookies) if h.cookies is not None else None
        return replace(template, url=url, headers=headers, cookies=cookies)

    def _done(self, code: int, message: str, h: Easy, index: int, job: tuple[Any, ...],
              url: str, sent: str, attempts: int,
              chain: tuple[RedirectChain, RequestConfig] | None) -> None:
        """A finished transfer, as the engine, ``CurlBackend.request()`` and the Executor
        finish it: the response of this hop, the next hop, a retry, a failure or a value."""
        code = h.result(code, message)  # as Engine._drain: the exact max_body_size check
        config = chain[1] if chain is not None else self.template  # what this hop sent
        try:
            response = self.finish(h, code, sent, config)
            if response.status_code in REDIRECT_CODES and config.follow_redirects:
                if chain is None:
                    config = self._first_config(h, url, job[1])
                    redirects = RedirectChain(config, "curl", too_many_code=_TOO_MANY_REDIRECTS)
                else:
                    redirects = chain[0]
                hop = redirects.next_config(config, response)
                if hop is not None:
                    self.hops.append((index, job, url, attempts, redirects, hop))
                    return
                response = redirects.finish(response)
            elif chain is not None:
                response = chain[0].finish(response)
        except FastRequestsError as exc:
            self._error(exc, index, job, url, attempts)
            return
        except Exception as exc:  # the Executor's wording for a backend breaking its contract
            error = BackendError(f"backend 'curl' raised {type(exc).__name__}: {exc}",
                                 backend_name="curl", url=url)
            error.__cause__ = exc
            self._error(error, index, job, url, attempts)
            return
        status = response.status_code
        if self.jar is not None and response.has_header("set-cookie"):
            self.jar.extract(response.url or url, response.get_all("set-cookie"))
            self._cookies = True
        if status in self.statuses:
            self._retry_status(response, index, job, url, attempts)
            return
        try:
            value = extract_value(response, self.rtype)
        except Exception as exc:  # invalid JSON: the general path's very error
            item = job[0]
            self._failed(index, job, str(item if item.__class__ is str else item.url),
                         response, exc, attempts)
            return
        parse = self.parse_func
        if parse is None:
            self._value(index, job, url, response, value, attempts)
        else:
            self._parsed(parse, value, index, job, url, response, attempts)

    def _parsed(self, parse: Callable[[Any], Any], value: Any, index: int, job: Any, url: str,
                response: Any, attempts: int) -> None:
        try:
            value = parse(value)
        except Exception as exc:
            error = ParseFuncError(f"parse_func raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._failed(index, job, url, response, error, attempts)
            return
        self._value(index, job, url, response, value, attempts)

    def _value(self, index: int, job: Any, url: str, response: Any, value: Any, attempts: int
               ) -> None:
        """Input ``index`` succeeded. ``response``: the response, or its status code."""
        out = self.out
        if out is None:
            self.results[index] = value
        else:  # emit's arguments; job: (input, User-Agent, started); no raw body
            out.append((index, job[0], url, response, value, None, attempts, job[2], None))

    def _failed(self, index: int, job: Any, url: str, response: Any, error: BaseException,
                attempts: int) -> None:
        """Input ``index`` failed (``response``: the last one, as the Executor returns it)."""
        out = self.out
        if out is None:
            self.fail(index, url, error, attempts)
        else:
            out.append((index, job[0], url, response, None, error, attempts, job[2], None))

    def _retry_status(self, response: Any, index: int, job: Any, url: str, attempts: int
                      ) -> None:
        method = self.template.method
        decision = self.policy.on_response(response, attempts, method)
        if not decision.retry:
            self._failed(index, job, url, response, RetryExhaustedError(
                f"{decision.reason} ({method} {url})", attempts=attempts,
                last_response=response,
            ), attempts)
            return
        self._later(index, job, attempts, decision.delay)

    def _error(self, error: BaseException, index: int, job: Any, url: str, attempts: int
               ) -> None:
        decision = self.policy.on_error(error, attempts, self.template.method)
        if not decision.retry:
            self._failed(index, job, url, None, error, attempts)
            return
        self._later(index, job, attempts, decision.delay)

    def _later(self, index: int, job: Any, attempts: int, delay: float) -> None:
        """Send ``job`` (the input and its User-Agent) again from its own URL (the whole
        redirect chain, as the Executor does), after ``delay`` seconds."""
        self._sleeping += 1
        if delay > 0:
            self.retry(index, job, attempts, delay)
        else:
            self.resubmitted.append((index, job, attempts))
