"""The download door against real HTTP servers on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import projects.downloads as downloads
from projects.downloads import download
from projects.errors import SourceError

PAYLOAD = b"archive bytes " * 100


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        routes = {
            "/file.zip": (200, {}, PAYLOAD),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""),
            "/to-loopback": (302, {"Location": "http://127.0.0.2:1/x.zip"}, b""),
            "/to-ftp": (302, {"Location": "ftp://example.com/x.zip"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/relative": (302, {"Location": "/file.zip"}, b""),
            "/big.zip": (200, {}, b"x" * (3 * 1024 * 1024)),
            "/missing.zip": (404, {}, b"no"),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.handle_error = lambda *args: None  # clients that hang up early are expected here
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def loopback_one_is_public(monkeypatch) -> None:
    """Stand-in for a public host: only 127.0.0.1 passes the address check, every other
    non-public address (the redirect targets) is refused as in production."""
    original = downloads.address_allowed
    monkeypatch.setattr(downloads, "address_allowed", lambda address: address == "127.0.0.1" or original(address))


def test_private_addresses_refused_by_default(server: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="download refused: 127.0.0.1 resolves to 127.0.0.1"):
        download(url=f"{server}/file.zip", destination=tmp_path / "f")
    port = server.rsplit(":", 1)[1]
    with pytest.raises(SourceError, match="download refused: localhost resolves to"):
        download(url=f"http://localhost:{port}/file.zip", destination=tmp_path / "f")
    for address in ("169.254.169.254", "10.0.0.1", "192.168.1.1", "[::1]", "[fe80::1]", "0.0.0.0"):
        with pytest.raises(SourceError, match="download refused"):
            download(url=f"http://{address}:{port}/x.zip", destination=tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_allowed_by_setting(settings, server: str, tmp_path: Path) -> None:
    settings.REFACT_DOWNLOAD_ALLOW_PRIVATE = True
    assert download(url=f"{server}/file.zip", destination=tmp_path / "f") == len(PAYLOAD)
    assert (tmp_path / "f").read_bytes() == PAYLOAD
    assert download(url=f"{server}/relative", destination=tmp_path / "g") == len(PAYLOAD)


@pytest.mark.usefixtures("loopback_one_is_public")
def test_redirects_to_private_addresses_refused(server: str, tmp_path: Path) -> None:
    assert download(url=f"{server}/file.zip", destination=tmp_path / "f") == len(PAYLOAD)
    with pytest.raises(SourceError, match="169.254.169.254, a private, loopback or link-local"):
        download(url=f"{server}/to-metadata", destination=tmp_path / "g")
    with pytest.raises(SourceError, match="127.0.0.2, a private"):
        download(url=f"{server}/to-loopback", destination=tmp_path / "g")
    with pytest.raises(SourceError, match="only http:// and https://"):
        download(url=f"{server}/to-ftp", destination=tmp_path / "g")
    with pytest.raises(SourceError, match="more than 5 redirects"):
        download(url=f"{server}/loop", destination=tmp_path / "g")
    with pytest.raises(SourceError, match="answered 404"):
        download(url=f"{server}/missing.zip", destination=tmp_path / "g")
    assert not (tmp_path / "g").exists()


@pytest.mark.usefixtures("loopback_one_is_public")
def test_size_limit(server: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="larger than 2 MB"):
        download(url=f"{server}/big.zip", destination=tmp_path / "f", max_bytes=2 * 1024 * 1024)
    assert not (tmp_path / "f").exists() and not (tmp_path / "f.part").exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.zip", "gopher://x/", "http:///nohost"])
def test_schemes_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="only http:// and https://"):
        download(url=url, destination=tmp_path / "f")
