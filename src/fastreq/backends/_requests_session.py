"""The requests plumbing under :mod:`fastreq.backends.requests`: session, adapter, pool.

- ``FastreqSession``: no cookie jar that keeps server cookies, no environment proxies, no
  redirect handling at all (the backend follows redirects itself);
- ``FastreqAdapter``: HTTP/1.1 even when urllib3-future stands in for urllib3 (it would negotiate
  HTTP/2 by ALPN, and the requests backend announces HTTP/1.1 only); its unverified HTTPS
  pools do not emit ``InsecureRequestWarning``.
"""

from __future__ import annotations

import http.cookiejar
import ssl
from typing import Any

import requests
import requests.adapters
import urllib3
from urllib3.util.ssl_ import resolve_cert_reqs

from fastreq.backends._urllib3_errors import proxy_mapping, quiet_https_pools

__all__ = ["FastreqAdapter", "FastreqSession", "proxies_for"]

_HTTP_VERSION = getattr(urllib3, "HttpVersion", None)
_H1_ONLY: dict[str, Any] = (
    {} if _HTTP_VERSION is None else {"disabled_svn": {_HTTP_VERSION.h2, _HTTP_VERSION.h3}}
)


class _QuietHTTPSPool(urllib3.HTTPSConnectionPool):
    """No InsecureRequestWarning for a pool that verifies nothing: ``verify_ssl=False`` is an
    explicit choice, and a warning per connection would be noise (or an error)."""

    def _validate_conn(self, conn: Any) -> None:
        if resolve_cert_reqs(self.cert_reqs) != ssl.CERT_NONE:
            super()._validate_conn(conn)
            return
        # urllib3's HTTPS check, minus the warning.
        urllib3.HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


def _quiet(manager: Any) -> Any:
    return quiet_https_pools(manager, urllib3.HTTPSConnectionPool, _QuietHTTPSPool)


class FastreqAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that stays on HTTP/1.1 even over urllib3-future, and whose
    unverified HTTPS pools do not warn."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **{**_H1_ONLY, **pool_kwargs})
        _quiet(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _quiet(super().proxy_manager_for(proxy, **{**_H1_ONLY, **proxy_kwargs}))


class FastreqSession(requests.Session):
    """A session that never stores a server cookie and never follows a redirect: the backend
    follows them itself, hop by hop (:mod:`fastreq.backends._redirects`)."""

    def __init__(self, adapter: requests.adapters.HTTPAdapter) -> None:
        super().__init__()
        self.trust_env = False  # fastreq decides proxies itself
        self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> None:
        # Even with allow_redirects=False requests prepares the next hop (for
        # Response.next), reading the whole redirect body, decoded, into memory first.
        return None


def proxies_for(proxy: str | None) -> dict[str, str] | None:
    """requests' ``proxies=`` for one proxy URL (checked: a scheme requests can use)."""
    return proxy_mapping(
        proxy, socks_ok=isinstance(requests.adapters.SOCKSProxyManager, type),
        socks_hint="SOCKS proxies with backend 'requests' need PySocks: pip install "
                   "'requests[socks]' (python-socks when urllib3-future is installed), or use "
                   "backend='curl'",
    )
