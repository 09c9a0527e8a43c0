"""The one door for downloads by link: http(s) only, bounded redirects, size and time limits, and
the address checked when the socket connects (a DNS answer that changes between a look-up and the
connection cannot slip a private address through)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from django.conf import settings

from projects.errors import SourceError

MAX_REDIRECTS = 5
CHUNK = 1024 * 1024


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, refuses non-public addresses, then connects to the checked address."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error.strerror}") from None
        addresses = [info[4][0] for info in infos]
        if not self.allow_private:
            refused = [address for address in addresses if not address_allowed(address)]
            if refused:
                raise RefusedAddress(f"{host} resolves to {refused[0]}, a private, loopback or link-local address")
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


class RefusedAddress(httpcore.ConnectError):
    pass


def guarded_client(*, timeout: float | None = None, allow_private: bool | None = None) -> httpx.Client:
    """An httpx client that never follows redirects itself and connects only to public addresses."""
    allow = settings.REFACT_DOWNLOAD_ALLOW_PRIVATE if allow_private is None else allow_private
    transport = httpx.HTTPTransport()
    # httpx has no public hook for the network back end; the pool is rebuilt around ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl.create_default_context(),
        network_backend=GuardedBackend(allow_private=allow),
        max_connections=4,
    )
    return httpx.Client(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout or settings.REFACT_DOWNLOAD_TIMEOUT_SECONDS),
        trust_env=False,  # no proxy from the environment: the address check must see the real peer
    )


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises for a port that is not a number from 0 to 65535)
    except ValueError as error:
        raise SourceError(f"url: not a valid link ({error})", field="url") from None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url.strip()):
        raise SourceError("url: the link contains control characters", field="url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError("url: only http:// and https:// links are allowed", field="url")
    return url.strip()


def check_link_addresses(url: str) -> None:
    """When a link is added: refuse a host that resolves to a private address now (the download checks
    again when it connects). A name that does not resolve yet is accepted: the server may be offline."""
    if settings.REFACT_DOWNLOAD_ALLOW_PRIVATE:
        return
    parts = urlsplit(check_url(url))
    host = (parts.hostname or "").strip("[]")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    refused = [str(info[4][0]) for info in infos if not address_allowed(str(info[4][0]))]
    if refused:
        raise SourceError(
            f"url: {host} resolves to {refused[0]}, a private, loopback or link-local address "
            "(REFACT_DOWNLOAD_ALLOW_PRIVATE)",
            field="url",
        )


def download(*, url: str, destination: Path, max_bytes: int | None = None) -> int:
    """Fetch `url` into `destination`; returns the byte count. SourceError with a clear line otherwise."""
    url = check_url(url)
    max_bytes = max_bytes or settings.REFACT_DOWNLOAD_MAX_MB * 1024 * 1024
    deadline = time.monotonic() + settings.REFACT_DOWNLOAD_TIMEOUT_SECONDS
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with guarded_client() as client:
            for _hop in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        url = check_url(urljoin(url, location))
                        continue
                    if response.status_code != 200:
                        raise SourceError(f"download failed: the server answered {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise SourceError(
                            f"download is larger than {max_bytes // (1024 * 1024)} MB (REFACT_DOWNLOAD_MAX_MB)"
                        )
                    written = 0
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise SourceError(
                                    f"download is larger than {max_bytes // (1024 * 1024)} MB (REFACT_DOWNLOAD_MAX_MB)"
                                )
                            if time.monotonic() > deadline:
                                raise SourceError("download took too long (REFACT_DOWNLOAD_TIMEOUT_SECONDS)")
                            out.write(chunk)
                    partial.replace(destination)
                    return written
            raise SourceError(f"download failed: more than {MAX_REDIRECTS} redirects")
    except RefusedAddress as error:
        raise SourceError(f"download refused: {error}") from None
    except httpx.TimeoutException:
        raise SourceError("download took too long (REFACT_DOWNLOAD_TIMEOUT_SECONDS)") from None
    except httpx.HTTPError as error:
        cause = error.__cause__ if isinstance(error.__cause__, RefusedAddress) else error
        prefix = "download refused" if isinstance(cause, RefusedAddress) else "download failed"
        raise SourceError(f"{prefix}: {cause}") from None
    finally:
        partial.unlink(missing_ok=True)
