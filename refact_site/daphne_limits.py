"""daphne as `manage.py serve` runs it: the body cap inside daphne (Twisted writes a request body to a
temporary file before daphne hands the request to the application, so the cap must act while the
bytes arrive), a large body left in its file for the application to read as it goes, no form parsing
by Twisted, and TCP_NODELAY on every connection. Imported after daphne has installed its reactor."""

from __future__ import annotations

import io
import secrets
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest

from refact_site.bodylimit import LAZY_BODY_HEADER, body_limit_for, lazy_body_close, lazy_body_keep, too_large_response

UPLOAD_EXAMPLE = "/api/projects/1/sources/upload/"


class LimitedWebRequest(WebRequest):
    """daphne's request, answering 413 and closing the connection once the body passes the path's cap."""

    body_limit = 0
    body_received = 0
    body_refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # daphne reads the body itself and never looks at Twisted's `args`. Twisted's own form parsing
        # would read a whole multipart upload into memory (several copies, up to the 1 GB cap), answer
        # one it cannot parse with a bare 400 of its own before the application sees it, and parse
        # every POST's Content-Type with the email package (about a tenth of a relayed request's time).
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted's name)
        # The request line is parsed before the headers; Twisted keeps its path on the channel until then.
        raw_path = getattr(self.channel, "_path", b"") or b""
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        # A channel that does not expose the path (another HTTP version): the largest cap of any path
        # here; the ASGI middleware applies the path's own cap once the request reaches the application.
        self.body_limit = body_limit_for(path) if path else max(body_limit_for("/"), body_limit_for(UPLOAD_EXAMPLE))
        self.body_path = path
        if length is not None and length > self.body_limit:
            super().gotLength(0)  # an in-memory buffer that will stay empty
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.body_refused:
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> Any:  # noqa: N802
        if self.body_refused:
            return None
        # The header is ours alone (defence in depth: its tokens are random and never shown to anyone).
        self.requestHeaders.removeHeader(LAZY_BODY_HEADER)
        if not isinstance(self.content, io.BytesIO):
            # A large or chunked body, in a temporary file. daphne would read all of it into the
            # application's queue at once (an upload under the 1 GB cap: that much memory); instead
            # the application reads the file as it consumes the body (`lazy_body_receive`).
            token = secrets.token_hex(16)
            lazy_body_keep(token, self.content)
            self.requestHeaders.setRawHeaders(LAZY_BODY_HEADER, [token.encode()])
            self.content = io.BytesIO()
            self.notifyFinish().addBoth(lambda _: lazy_body_close(token))
        return super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.body_refused = True
        content_type, body = too_large_response(self.body_path)
        head = (
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: " + content_type + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        transport = self.channel.transport
        transport.write(head + body)
        transport.loseConnection()


class RefactHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 (Twisted's name)
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            # Bodies over the cap are refused while they arrive, before Twisted stores them.
            protocol.requestFactory = LimitedWebRequest
            made = protocol.connectionMade

            def connection_made() -> None:
                made()
                # Streamed completions are many small writes: without TCP_NODELAY, Nagle's algorithm
                # holds each one until the client's delayed ACK (~40 ms per event).
                protocol.transport.setTcpNoDelay(True)

            protocol.connectionMade = connection_made
        return protocol


def http_factory_install() -> None:
    """Make daphne serve HTTP with RefactHTTPFactory (daphne.server looks the factory up when it runs)."""
    import daphne.server

    daphne.server.HTTPFactory = RefactHTTPFactory
