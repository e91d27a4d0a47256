"""Shared fixtures: real servers on 127.0.0.1 and the backend parametrization."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from fastreq.backends import available_backends

from ._faults import FaultServer
from ._proxy import ProxyServer
from ._server import ServerThread, TestServer, build_app, closed_port

#: Every backend installed here; backend behaviour tests run once per name.
BACKENDS = available_backends()


@pytest.fixture(scope="session")
def _server_state() -> Iterator[TestServer]:
    state = TestServer()
    thread = ServerThread(build_app(state))
    state.base = f"http://127.0.0.1:{thread.port}"
    yield state
    thread.stop()


@pytest.fixture
def server(_server_state: TestServer) -> TestServer:
    """The recording HTTP server (see tests/_server.py), reset for each test."""
    _server_state.reset()
    return _server_state


@pytest.fixture(scope="session")
def tls_certs() -> object:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def _tls_server_state(tls_certs: object, tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[TestServer]:
    ca = tls_certs
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)  # type: ignore[attr-defined]
    state = TestServer()
    thread = ServerThread(build_app(state), ssl_context=ctx)
    state.base = f"https://127.0.0.1:{thread.port}"
    ca_path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))  # type: ignore[attr-defined]
    state.ca_path = str(ca_path)  # type: ignore[attr-defined]
    yield state
    thread.stop()


@pytest.fixture
def tls_server(_tls_server_state: TestServer) -> TestServer:
    """The same app over HTTPS with a self-signed certificate (``.ca_path`` is its CA)."""
    _tls_server_state.reset()
    return _tls_server_state


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{closed_port()}/"


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each installed backend's name in turn."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def _proxy_state() -> Iterator[ProxyServer]:
    proxy = ProxyServer()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy_server(_proxy_state: ProxyServer) -> ProxyServer:
    """A recording forward HTTP proxy on 127.0.0.1 (see tests/_proxy.py), reset for each test.

    ``.url`` is its address, ``.records`` every request it received, ``.require_auth(user,
    password)`` makes it answer 407 without those credentials.
    """
    _proxy_state.reset()
    return _proxy_state


@pytest.fixture(scope="session")
def _faults_state() -> Iterator[FaultServer]:
    faults = FaultServer()
    yield faults
    faults.stop()


@pytest.fixture
def faults(_faults_state: FaultServer) -> FaultServer:
    """The misbehaving raw-socket origin of tests/_faults.py, its records cleared."""
    _faults_state.reset()
    return _faults_state
