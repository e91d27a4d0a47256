"""Property-based tests through the public API: every input is either sent exactly as given
(checked at the local fault server's record of the request) or rejected with
:class:`~fastreq.ValidationError`; nothing else escapes.

Hypothesis runs a bounded number of examples (``deadline=None``: a request takes a few ms,
more on a loaded machine); each property runs once per backend.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastreq import PartialFailureError, ValidationError, fastreq
from fastreq.backends._common import build_url

from ._faults import FaultRecord, FaultServer

LIMIT = 10.0
FUZZ = settings(
    max_examples=int(os.environ.get("FASTREQ_FUZZ_EXAMPLES", "25")),
    derandomize="FASTREQ_FUZZ_EXAMPLES" not in os.environ,  # CI: the same examples each run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
# Headers the library or the wire owns: a caller-set value may legitimately be replaced.
_RESERVED = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "expect", "accept-encoding", "proxy-connection", "cookie",
    "content-type", "user-agent", "accept", "http2-settings",
}

_TEXT = st.text(
    st.characters(codec="utf-8"), max_size=20
)
_TOKEN = st.text(st.sampled_from("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCXYZ"),
                 min_size=1, max_size=12)


def _send(urls: Any, backend_name: str, **options: Any) -> Any:
    """The result, or the ValidationError; any other outcome fails the test."""
    try:
        return fastreq(urls, backend=backend_name, max_retries=0, timeout=LIMIT,
                       return_type="response", **options)
    except ValidationError as exc:
        return exc
    except PartialFailureError as exc:
        errors = [f.error for f in exc.failures]
        # a per-input ValidationError (raised while sending) is a rejection too
        assert all(isinstance(e, ValidationError) for e in errors), [repr(e) for e in errors]
        return errors[0]


def _only_record(faults: FaultServer) -> FaultRecord:
    assert len(faults.records) == 1, [r.target for r in faults.records]
    return faults.records[0]


# -- URLs ----------------------------------------------------------------------------------

_SEGMENT = st.text(
    st.characters(codec="utf-8"), max_size=8
).filter(lambda s: s not in (".", ".."))


@st.composite
def _urls(draw: st.DrawFn, port: int) -> str:
    scheme = draw(st.sampled_from(["http", "HTTP", "Http", "ftp", "", "file", "javascript"]))
    host = draw(st.sampled_from(
        ["127.0.0.1", "localhost", "", "[::1", "127.0.0.1 ", "u:p@127.0.0.1"]
    ))
    # (no port, or an empty one, would mean port 80: not the local server)
    port_text = draw(st.sampled_from([str(port), str(port), "0", "99999", "x", "-1"]))
    path = "/".join(draw(st.lists(_SEGMENT, max_size=4)))
    query = draw(st.one_of(st.just(""), _TEXT))
    fragment = draw(st.one_of(st.just(""), _TEXT))
    url = f"{scheme}://{host}:{port_text}/" + path
    if query:
        url += "?" + query
    if fragment:
        url += "#" + fragment
    return url


def _same_path(sent: str, received: str) -> bool:
    # backends percent-encode what needs it (each in its own way): compare decoded
    return unquote(sent) == unquote(received)


def test_urls_sent_exactly_or_rejected(backend_name: str, faults: FaultServer) -> None:
    @FUZZ
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        url = data.draw(_urls(faults.port))
        faults.reset()
        out = _send(url, backend_name)
        if isinstance(out, ValidationError):
            assert faults.records == []
            return
        assert out.status_code == 404, (url, out)
        record = _only_record(faults)
        parts = urlsplit(url)
        assert "#" not in record.target
        received_path, _, received_query = record.target.partition("?")
        assert _same_path(parts.path or "/", received_path), (url, record.target)
        assert unquote(parts.query) == unquote(received_query), (url, record.target)

    prop()


# -- headers -------------------------------------------------------------------------------


def test_headers_sent_exactly_or_rejected(backend_name: str, faults: FaultServer) -> None:
    names = st.one_of(_TOKEN, _TEXT.filter(bool))

    @FUZZ
    @given(st.dictionaries(names, _TEXT, max_size=4))
    def prop(headers: dict[str, str]) -> None:
        assume(not any(n.lower() in _RESERVED for n in headers))
        assume(len({n.lower() for n in headers}) == len(headers))
        faults.reset()
        out = _send(faults.url + "/echo", backend_name, headers=headers)
        if isinstance(out, ValidationError):
            assert faults.records == []
            return
        assert out.status_code == 200
        received = {}
        for name, value in _only_record(faults).header_items:
            received[name.lower()] = value
        for name, value in headers.items():
            got = received.get(name.lower())
            assert got is not None, (name, value, received)
            # surrounding whitespace is not part of a value (non-ASCII values are rejected)
            assert got == value.strip(" \t"), (name, value, got)

    prop()


# -- params --------------------------------------------------------------------------------

_SCALAR = st.one_of(_TEXT, st.integers(), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))


def test_params_sent_exactly_or_rejected(backend_name: str, faults: FaultServer) -> None:
    @FUZZ
    @given(st.dictionaries(_TEXT, st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3)),
                           max_size=4))
    def prop(params: dict[str, Any]) -> None:
        faults.reset()
        out = _send(faults.url + "/echo", backend_name, params=params)
        if isinstance(out, ValidationError):
            assert faults.records == []
            return
        assert out.status_code == 200
        record = _only_record(faults)
        expected = parse_qsl(urlsplit(build_url("http://h/", params)).query,
                             keep_blank_values=True)
        got = parse_qsl(urlsplit(record.target).query, keep_blank_values=True)
        assert got == expected, (params, record.target)
        assert urlencode(got) == urlencode(expected)

    prop()


# -- JSON bodies ---------------------------------------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def test_json_bodies_sent_exactly_or_rejected(backend_name: str, faults: FaultServer) -> None:
    @FUZZ
    @given(_JSON)
    def prop(body: Any) -> None:
        assume(body is not None)  # json=None means no body
        faults.reset()
        out = _send(faults.url + "/echo", backend_name, method="POST", json=body)
        if isinstance(out, ValidationError):
            assert faults.records == []
            assert _has_non_finite(body), body  # only what JSON cannot carry is refused
            return
        assert out.status_code == 200
        record = _only_record(faults)
        assert record.headers.get("content-type") == "application/json"
        assert json.loads(record.body) == body

    prop()
