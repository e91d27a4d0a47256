"""A batch plan: the inputs validated and normalized, and the per-input RequestConfig factory.

Everything that can be checked before sending is checked here: a list of inputs is validated
whole before the first request; a generator is validated item by item as it is pulled (a bad
item becomes that input's failure, the batch goes on).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastreq._models import Request, ReturnType
from fastreq.backends._common import json_bytes
from fastreq.backends.base import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_REDIRECTS, RequestConfig
from fastreq.exceptions import ValidationError
from fastreq.timeouts import Timeout, TimeoutLike
from fastreq.utils.headers import UserAgentPool, merge_headers
from fastreq.utils.proxies import parse_proxy
from fastreq.utils.validators import (
    to_ascii_url,
    validate_cookies,
    validate_headers,
    validate_keys,
    validate_method,
    validate_url,
)

__all__ = ["Item", "Plan", "RequestDefaults", "coerce_return_type"]

Item = str | Request


def coerce_return_type(value: object) -> ReturnType:
    try:
        return ReturnType(value)
    except ValueError:
        choices = ", ".join(repr(r.value) for r in ReturnType)
        raise ValidationError(f"invalid return_type {value!r}; choose one of {choices}") from None


def _check_body(data: Any, json: Any, where: str) -> None:
    if data is not None and json is not None:
        raise ValidationError(f"{where}: pass either data= or json=, not both")
    if data is not None and not isinstance(data, (bytes, bytearray, memoryview, str, Mapping)):
        if isinstance(data, (list, tuple)) and all(
            isinstance(p, tuple) and len(p) == 2 for p in data
        ):
            return
        raise ValidationError(
            f"{where}: data must be bytes, str, a dict or a list of (key, value) pairs, "
            f"got {type(data).__name__}"
        )


def _check_params(params: object, where: str) -> dict[str, Any] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise ValidationError(f"{where}: params must be a dict, got {type(params).__name__}")
    return dict(params)


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """The client-level settings that every RequestConfig of a batch starts from."""

    headers: dict[str, str] | None
    cookies: dict[str, str] | None
    timeout: Timeout | None
    http2: bool
    follow_redirects: bool
    verify_ssl: bool
    user_agents: UserAgentPool | None
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE


class Plan:
    """Validated inputs of one batch and how to turn each into a :class:`RequestConfig`."""

    def __init__(
        self,
        urls: Any,
        defaults: RequestDefaults,
        *,
        method: str = "GET",
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Any = None,
        cookies: Any = None,
        timeout: TimeoutLike | object = None,
        proxy: str | None = None,
        keys: Iterable[Hashable] | None = None,
        timeout_given: bool = False,
    ) -> None:
        self.method = validate_method(method)
        self.params = _check_params(params, "request options")
        _check_body(data, json, "request options")
        if json is not None:
            json_bytes(json)  # once per batch: NaN, non-str keys... fail before sending
        self.data = data
        self.json = json
        self.cookies = {**(defaults.cookies or {}), **(validate_cookies(cookies) or {})} or None
        self.timeout = Timeout.coerce(timeout) if timeout_given else defaults.timeout  # type: ignore[arg-type]
        self.proxy = parse_proxy(proxy) if proxy is not None else None
        self.defaults = defaults
        self.headers = merge_headers(defaults.headers, validate_headers(headers)) or None
        has_ua = any(name.lower() == "user-agent" for name in (self.headers or {}))
        self._ua = None if has_ua else defaults.user_agents

        self.single = isinstance(urls, (str, Request))
        if self.single:
            urls = [urls]
        elif isinstance(urls, (bytes, bytearray, Mapping)) or not isinstance(urls, Iterable):
            raise ValidationError(
                "urls must be a URL string, a fastreq.Request or an iterable of them, "
                f"got {type(urls).__name__}"
            )
        key_list = None
        if keys is not None:
            urls = list(urls)
            key_list = validate_keys(keys, len(urls))
        self.count: int | None = len(urls) if isinstance(urls, Collection) else None
        if self.count is not None:
            check = self._check_item
            for index, item in enumerate(urls):
                if item.__class__ is str:
                    validate_url(item)  # what _check_item does for a str, one call less
                else:
                    check(item, index)
            request_keys = self._request_keys(urls)
            if key_list is None and request_keys is not None:
                key_list = request_keys
        self.keys: list[Hashable] | None = key_list
        self._items: Iterable[Any] = urls

    @staticmethod
    def _request_keys(urls: Collection[Any]) -> list[Hashable] | None:
        found = [item.key for item in urls if isinstance(item, Request) and item.key is not None]
        if not found:
            return None
        if len(found) != len(urls):
            raise ValidationError(
                "some Request objects have a key and some inputs do not: give every input a "
                "key (Request.key or keys=[...]) or none"
            )
        return validate_keys(found, len(urls))

    def _check_item(self, item: object, index: int) -> None:
        if isinstance(item, str):
            validate_url(item)
            return
        if isinstance(item, Request):
            where = f"input {index} ({item.url!r})"
            validate_url(item.url)
            if item.method is not None:
                validate_method(item.method)
            validate_headers(item.headers, f"{where} headers")
            _check_params(item.params, where)
            _check_body(item.data, item.json, where)
            return
        raise ValidationError(
            f"input {index} must be a URL string or a fastreq.Request, got {type(item).__name__}"
        )

    def items(self) -> Iterator[Any]:
        """The inputs in order (lazily, for a generator input)."""
        return iter(self._items)

    def key_for(self, index: int) -> Hashable | None:
        return self.keys[index] if self.keys is not None else None

    def config_factory(self) -> Callable[[Any, int], RequestConfig]:
        """A fast ``(item, index) -> RequestConfig``; validates lazily-pulled items itself."""
        lazy = self.count is None
        method, params, data, json = self.method, self.params, self.data, self.json
        cookies, timeout, proxy = self.cookies, self.timeout, self.proxy
        d = self.defaults
        http2, follow, verify = d.http2, d.follow_redirects, d.verify_ssl
        hops, cap = d.max_redirects, d.max_body_size
        pick_ua = self._ua.random if self._ua is not None else None
        base_headers = self.headers

        def headers_for(extra: dict[str, str] | None) -> dict[str, str] | None:
            if extra is None and pick_ua is not None and not base_headers:
                return {"User-Agent": pick_ua()}  # the common case: a rotated UA alone
            headers = merge_headers(base_headers, extra) if extra else base_headers
            if pick_ua is not None and not (
                extra and any(k.lower() == "user-agent" for k in extra)
            ):
                headers = dict(headers) if headers else {}
                headers["User-Agent"] = pick_ua()
            return headers

        def make(item: Any, index: int) -> RequestConfig:
            if lazy:
                self._check_item(item, index)
            if item.__class__ is str:
                return RequestConfig(
                    item if item.isascii() else to_ascii_url(item),
                    method, params, data, json, headers_for(None),
                    cookies, timeout, proxy, http2, False, follow, verify, hops, None, cap,
                )
            req: Request = item
            item_headers = validate_headers(req.headers) if req.headers else None
            has_body = req.data is not None or req.json is not None
            return RequestConfig(
                req.url if req.url.isascii() else to_ascii_url(req.url),
                req.method.upper() if req.method else method,
                req.params if req.params is not None else params,
                req.data if has_body else data,
                req.json if has_body else json,
                headers_for(item_headers),
                cookies,
                timeout,
                proxy,
                http2,
                False,
                follow,
                verify,
                hops,
                None,
                cap,
            )

        return make
