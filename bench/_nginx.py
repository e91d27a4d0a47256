"""The benchmark's server side: tools from apt, a self-signed CA, our own nginx on 127.0.0.1.

``render_nginx_conf`` is pure (the smoke test checks it); ``Nginx`` starts nginx in the
foreground (``daemon off; master_process off``: one process, nothing left behind) with a
config written into a temp dir and stops it on exit, error or Ctrl-C.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

Log = Callable[[str], None]

#: ~100 bytes of JSON, the small-request body
SMALL_BODY = (
    b'{"id":1,"name":"fastreq","ok":true,"items":[1,2,3,4,5],'
    b'"tags":["bench","json","small"],"score":0.75}'
)
LARGE_SIZE = 1024 * 1024
TEMPLATE = Path(__file__).with_name("nginx.conf.template")
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class SetupError(RuntimeError):
    """The benchmark cannot run on this machine (a tool is missing and cannot be installed)."""


# -- tools ------------------------------------------------------------------------------
def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((p for p in NGINX_PATHS if os.access(p, os.X_OK)), None)


def apt_install(package: str, log: Log) -> bool:
    """``apt-get update && apt-get install -y package`` (via ``sudo -n`` when not root)."""
    if shutil.which("apt-get") is None:
        log(f"  cannot install {package}: no apt-get on this machine")
        return False
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            log(f"  cannot install {package}: not root and no sudo")
            return False
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*prefix, "apt-get", "update"], [*prefix, "apt-get", "install", "-y", package]):
        log(f"  $ {' '.join(cmd)}")
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"  failed: {exc}")
            return False
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            log(f"  failed (exit {proc.returncode}): " + " / ".join(tail))
            return False
    return True


def ensure_nginx(log: Log) -> str:
    nginx = find_nginx()
    if nginx:
        return nginx
    log("nginx is not installed; installing the Debian package:")
    if apt_install("nginx", log):
        nginx = find_nginx()
        if nginx:
            return nginx
    raise SetupError(
        "nginx is needed and could not be installed; install it (e.g. `sudo apt-get install -y "
        "nginx`) and run again"
    )


def ensure_wrk(log: Log) -> str | None:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    log("wrk is not installed; installing the Debian package:")
    if apt_install("wrk", log):
        return shutil.which("wrk")
    log("  continuing without wrk: its rows and the wrk ratio are left out")
    return None


def nginx_version(nginx: str) -> tuple[int, ...]:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# -- TLS ------------------------------------------------------------------------------------
def make_certs(root: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 / localhost."""
    ca, cert, key = root / "ca.pem", root / "server.pem", root / "server.key"
    try:
        import trustme
    except ImportError:
        pass
    else:
        authority = trustme.CA()
        server = authority.issue_cert("127.0.0.1", "localhost")
        authority.cert_pem.write_to_path(str(ca))
        server.cert_chain_pems[0].write_to_path(str(cert))
        server.private_key_pem.write_to_path(str(key))
        return ca, cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SetupError("neither trustme nor openssl is available to make a test certificate")
    ca_key, csr, ext = root / "ca.key", root / "server.csr", root / "ext.cnf"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=fastreq bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise SetupError(f"openssl failed: {' '.join(cmd)}\n{proc.stderr}")
    return ca, cert, key


# -- nginx ---------------------------------------------------------------------------------
def tls_listen(version: tuple[int, ...], port: int) -> str:
    """The TLS ``listen`` line(s): ``http2 on;`` from nginx 1.25.1, ``listen ... http2`` before."""
    if version >= (1, 25, 1):
        return f"listen 127.0.0.1:{port} ssl;\n    http2 on;"
    return f"listen 127.0.0.1:{port} ssl http2;"


def render_nginx_conf(
    root: str | Path, http_port: int, tls_port: int, version: tuple[int, ...],
    cert: str | Path, key: str | Path, template: str | None = None,
) -> str:
    text = template if template is not None else TEMPLATE.read_text()
    return text.format(
        root=root, http_port=http_port, tls_listen=tls_listen(version, tls_port), cert=cert,
        key=key,
    )


class Nginx:
    """Our own nginx, in the foreground, pinned with ``pin`` (a ``taskset`` prefix)."""

    def __init__(self, nginx: str, pin: list[str]) -> None:
        self.nginx = nginx
        self.pin = pin
        self.version = nginx_version(nginx)
        self._tmp = tempfile.TemporaryDirectory(prefix="fastreq-run-")
        self.root = Path(self._tmp.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port = self.tls_port = 0
        self.ca = self.tls_log = Path()

    # URLs --------------------------------------------------------------------------------
    @property
    def small_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/small.json"

    @property
    def large_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/large.bin"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/small.json"

    def start(self) -> Nginx:
        www = self.root / "www"
        www.mkdir()
        (www / "small.json").write_bytes(SMALL_BODY)
        (www / "large.bin").write_bytes(os.urandom(LARGE_SIZE))
        self.ca, cert, key = make_certs(self.root)
        self.tls_log = self.root / "tls_access.log"
        for attempt in range(3):  # a free port can be taken between probe and bind: retry
            self.http_port, self.tls_port = free_port(), free_port()
            conf = self.root / "nginx.conf"
            conf.write_text(render_nginx_conf(
                self.root, self.http_port, self.tls_port, self.version, cert, key))
            cmd = [*self.pin, self.nginx, "-p", str(self.root), "-c", str(conf),
                   "-e", str(self.root / "error.log")]
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            up = wait_port(self.http_port, proc=self.proc)
            if up and wait_port(self.tls_port, proc=self.proc):
                return self
            err = self._error_text()
            self.stop()
            if "Address already in use" not in err or attempt == 2:
                raise SetupError(f"nginx did not start:\n{err}")
        raise SetupError("nginx did not start")  # pragma: no cover

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def check_alive(self) -> None:
        """SetupError if nginx has exited: every later run would only count refusals."""
        if self.proc is None or self.proc.poll() is not None:
            raise SetupError(f"nginx exited during the benchmark:\n{self._error_text()}")

    def _error_text(self) -> str:
        text = ""
        if self.proc is not None and self.proc.poll() is not None and self.proc.stderr:
            text += self.proc.stderr.read().decode(errors="replace")
        log = self.root / "error.log"
        if log.exists():
            text += log.read_text(errors="replace")[-3000:]
        return text.strip()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> Nginx:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
