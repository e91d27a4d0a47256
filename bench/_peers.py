"""The raw peers fastreq is measured against: pycurl, aiohttp, httpx, niquests, requests,
each doing the work of :mod:`_work` with no fastreq code in the request path."""

from __future__ import annotations

import threading
from typing import Any

from _work import Outcome, Spec, check, keeper, make_outcome, run_async, workers


def raw_pycurl(spec: Spec, same_request: bool = False) -> Outcome:
    """The reference: pycurl CurlMulti + perform() + select(), handles reused.
    ``same_request``: the request fastreq sends and the response it
    keeps (a rotating real User-Agent, Accept-Encoding offered, timeouts set, every header
    line captured), so the ratio measures fastreq's own overhead only."""
    import pycurl

    agents: Any = None
    if same_request:
        from fastreq.utils.headers import UserAgentPool

        agents = UserAgentPool().random

    url, n, conc = spec["url"], spec["n"], spec["conc"]
    keep = keeper(spec)
    multi = pycurl.CurlMulti()
    handles = []
    for _ in range(min(conc, n)):
        c = pycurl.Curl()
        c.body = []
        c.setopt(pycurl.WRITEFUNCTION, c.body.append)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.PROXY, "")
        if spec.get("ca"):
            c.setopt(pycurl.CAINFO, spec["ca"])
        if spec.get("http2"):
            c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
            c.setopt(pycurl.PIPEWAIT, 1)
        else:
            c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        if same_request:
            c.hdrs = []
            c.setopt(pycurl.HEADERFUNCTION, c.hdrs.append)
            c.setopt(pycurl.ACCEPT_ENCODING, "")
            c.setopt(pycurl.HTTPHEADER, ["Expect:"])
            c.setopt(pycurl.CONNECTTIMEOUT_MS, 10_000)
            c.setopt(pycurl.TIMEOUT_MS, 60_000)
        handles.append(c)
    free = list(handles)
    started = done = errors = nbytes = 0
    first = ""
    while done < n:
        while free and started < n:
            c = free.pop()
            c.body.clear()
            if agents is not None:
                c.hdrs.clear()
                c.setopt(pycurl.USERAGENT, agents())
            c.setopt(pycurl.URL, url)
            multi.add_handle(c)
            started += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, failed = multi.info_read()
            for c in ok:
                multi.remove_handle(c)
                try:
                    nbytes += check(spec, c.getinfo(pycurl.RESPONSE_CODE), b"".join(c.body),
                                    keep)
                except Exception as exc:
                    errors += 1
                    first = first or f"{type(exc).__name__}: {exc}"
                free.append(c)
            for c, code, msg in failed:
                multi.remove_handle(c)
                free.append(c)
                errors += 1
                first = first or f"curl error {code}: {msg}"
            done += len(ok) + len(failed)
            if not queued:
                break
        if done < n and (not free or started >= n):
            multi.select(1.0)
    for c in handles:
        c.close()
    multi.close()
    return make_outcome(errors, first, nbytes, "select")


def raw_aiohttp(spec: Spec, loop: str = "asyncio") -> Outcome:
    async def main() -> Outcome:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=spec["conc"])
        keep = keeper(spec)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> int:
                async with session.get(spec["url"]) as r:
                    return check(spec, r.status, await r.read(), keep)

            return await workers(spec["n"], spec["conc"], one)

    return run_async(main, loop)


def raw_httpx(spec: Spec, loop: str = "fastreq") -> Outcome:
    async def main() -> Outcome:
        import httpx

        conc = spec["conc"]
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        keep = keeper(spec)
        async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

            async def one() -> int:
                r = await client.get(spec["url"])
                return check(spec, r.status_code, r.content, keep)

            return await workers(spec["n"], conc, one)

    return run_async(main, loop)


def raw_niquests(spec: Spec, loop: str = "fastreq") -> Outcome:
    async def main() -> Outcome:
        import niquests

        conc = spec["conc"]
        keep = keeper(spec)
        async with niquests.AsyncSession(pool_maxsize=conc, disable_http3=True) as session:
            session.trust_env = False

            async def one() -> int:
                r = await session.get(spec["url"], timeout=30)
                return check(spec, r.status_code or 0, r.content or b"", keep)

            return await workers(spec["n"], conc, one)

    return run_async(main, loop)


def raw_requests_threads(spec: Spec) -> Outcome:
    """requests with a thread pool of ``conc`` threads, one Session per thread."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    keep = keeper(spec)
    errors = nbytes = 0
    first = ""

    def one(_: int) -> None:
        nonlocal errors, nbytes, first
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
            with lock:
                sessions.append(session)
        try:
            r = session.get(spec["url"], timeout=30)
            size = check(spec, r.status_code, r.content, keep)
            with lock:
                nbytes += size
        except Exception as exc:
            with lock:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:300]

    with ThreadPoolExecutor(spec["conc"]) as pool:
        for _ in pool.map(one, range(spec["n"])):
            pass
    for s in sessions:
        s.close()
    return make_outcome(errors, first, nbytes, "threads")
