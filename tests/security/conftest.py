"""Shared pieces of the hostile-input suites: a bearer header, a per-test data directory, and a real
HTTPS server on loopback (self-signed for `localhost`, trusted through GIT_SSL_CAINFO)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def files_under(root: Path) -> set[str]:
    """Every path below ROOT (files, links, directories), relative: what a refused input must not change."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def data_dir(settings, tmp_path: Path) -> Path:
    """A fresh data directory inside a parent we watch: nothing may appear next to it."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class HttpsServer:
    port: int
    ca_file: Path
    requests: list[str]


@pytest.fixture
def https_server(tmp_path: Path, monkeypatch) -> Callable[..., HttpsServer]:
    """https_server(directory=..., redirect_to=...) -> a TLS server on 127.0.0.1 serving DIRECTORY
    (bare git repositories, over smart HTTP) or answering every request with a redirect."""
    servers: list[ThreadingHTTPServer] = []

    def start(*, directory: Path | None = None, redirect_to: str | None = None) -> HttpsServer:
        seen: list[str] = []
        certificates = tmp_path / f"tls-{len(servers)}"
        certificates.mkdir()
        cert_path, key_path = _self_signed(certificates)

        class Redirect(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                seen.append(self.path)
                self.send_response(302)
                self.send_header("Location", str(redirect_to))
                self.send_header("Content-Length", "0")
                self.end_headers()

        class SmartGit(BaseHTTPRequestHandler):
            """git's smart HTTP protocol through `git http-backend` (CGI), as a real git server runs it."""

            def log_message(self, *args: object) -> None:
                pass

            def _cgi(self, method: str) -> None:
                seen.append(self.path)
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                environment = {
                    "PATH": "/usr/bin:/bin",
                    "GIT_PROJECT_ROOT": str(directory),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "HOME": str(directory),
                    "REQUEST_METHOD": method,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                result = subprocess.run(  # noqa: S603
                    ["git", "http-backend"],  # noqa: S607
                    input=body,
                    env=environment,
                    capture_output=True,
                    check=False,
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                self._cgi("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._cgi("POST")

        handler = Redirect if redirect_to else SmartGit
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        httpd.handle_error = lambda *args: None  # type: ignore[method-assign]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        # git inherits the operator's CA bundle from the environment (projects.gitclient).
        monkeypatch.setenv("GIT_SSL_CAINFO", str(cert_path))
        return HttpsServer(port=httpd.server_address[1], ca_file=cert_path, requests=seen)

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bool]]]:
    """A plain TCP listener on 127.0.0.1: (port, connections) proves whether anything connected at all."""
    import socket

    connections: list[bool] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connections.append(True)
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join(2)
    server.close()
