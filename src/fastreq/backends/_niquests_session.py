"""The niquests plumbing under :mod:`fastreq.backends.niquests`: a session that never follows a
redirect (the backend does, hop by hop) and whose unverified HTTPS pools do not warn."""

from __future__ import annotations

import ssl
from typing import Any

import niquests
import niquests.adapters
from niquests.packages import urllib3 as _urllib3

from fastreq.backends._urllib3_errors import quiet_https_pools

__all__ = ["NiquestsSession"]


class _QuietHTTPSPool(_urllib3.AsyncHTTPSConnectionPool):
    """No InsecureRequestWarning for a pool that verifies nothing: ``verify_ssl=False`` is an
    explicit choice, and a warning per connection would be noise (or an error)."""

    async def _validate_conn(self, conn: Any) -> None:
        if _urllib3.util.ssl_.resolve_cert_reqs(self.cert_reqs) != ssl.CERT_NONE:
            await super()._validate_conn(conn)
        else:  # urllib3-future's HTTPS check, minus the warning
            await _urllib3.AsyncHTTPConnectionPool._validate_conn(self, conn)


def _quiet(manager: Any) -> Any:
    return quiet_https_pools(manager, _urllib3.AsyncHTTPSConnectionPool, _QuietHTTPSPool)


class _QuietAdapter(niquests.adapters.AsyncHTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _quiet(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _quiet(super().proxy_manager_for(proxy, **proxy_kwargs))


class NiquestsSession(niquests.AsyncSession):
    """An AsyncSession that never follows a redirect (the backend does, hop by hop) and whose
    unverified HTTPS pools do not warn; its cookie jar is made to store nothing by
    ``NiquestsBackend._session_for``."""

    def mount(self, prefix: str, adapter: Any) -> None:
        if type(adapter) is niquests.adapters.AsyncHTTPAdapter:
            adapter.__class__ = _QuietAdapter  # same state, two methods overridden
            _quiet(adapter.poolmanager)
        super().mount(prefix, adapter)

    def get_redirect_target(self, resp: Any) -> None:
        # Even with allow_redirects=False niquests prepares the next hop (for Response.next),
        # reading the whole redirect body, decoded, into memory first.
        return None
