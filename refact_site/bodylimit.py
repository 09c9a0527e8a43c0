"""Request bodies are capped before they are stored: 413 on the declared Content-Length, and 413 as soon as
the bytes received (chunked, or a client that lies) pass the cap.

Django's ASGI handler spools the whole body to a temporary file before any view or middleware runs,
and daphne's HTTP layer buffers it before that; so the cap lives in front of both: this ASGI middleware
for any server, and `refact_site.daphne_limits` inside daphne itself. Uploads get the upload cap
(REFACT_UPLOAD_MAX_MB), every other request the request cap (REFACT_REQUEST_MAX_MB).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_PATHS = re.compile(r"^/(api/)?projects/\d+/sources/upload/?$")
# Room for the multipart envelope and the other form fields of an upload.
ENVELOPE_BYTES = 64 * 1024


def body_limit_for(path: str) -> int:
    """The most bytes a request body to PATH may have."""
    if UPLOAD_PATHS.match(path):
        return settings.REFACT_UPLOAD_MAX_MB * 1024 * 1024 + ENVELOPE_BYTES
    return settings.REFACT_REQUEST_MAX_MB * 1024 * 1024


def too_large_message(path: str) -> tuple[str, str]:
    """(field, message) for a body over the cap of PATH."""
    if UPLOAD_PATHS.match(path):
        return "file", f"file: the upload is larger than {settings.REFACT_UPLOAD_MAX_MB} MB (REFACT_UPLOAD_MAX_MB)"
    return "body", f"the request body is larger than {settings.REFACT_REQUEST_MAX_MB} MB (REFACT_REQUEST_MAX_MB)"


def too_large_response(path: str) -> tuple[bytes, bytes]:
    """(content type, body) of the 413 answer: JSON for the APIs, a short page for the pages."""
    from refact_site.middleware import JSON_PREFIXES

    field, message = too_large_message(path)
    if path.startswith(JSON_PREFIXES):
        return b"application/json", json.dumps({"detail": message, "field": field}).encode()
    page = f"<!doctype html><title>Too large</title><h1>Too large</h1><p>{html.escape(message)}</p>"
    return b"text/html; charset=utf-8", page.encode()


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


LAZY_BODY_HEADER = b"x-refact-lazy-body"
LAZY_BODY_CHUNK = 256 * 1024
# Token -> the temporary file of a request body not yet handed to the application (event loop only).
_lazy_bodies: dict[str, IO[bytes]] = {}


def lazy_body_keep(token: str, body: IO[bytes]) -> None:
    _lazy_bodies[token] = body


def lazy_body_close(token: str) -> None:
    body = _lazy_bodies.pop(token, None)
    if body is not None:
        body.close()


def lazy_body_receive(scope: dict[str, Any], receive: Callable[[], Awaitable[dict]]) -> Callable[[], Awaitable[dict]]:
    """RECEIVE, or where daphne's request kept the body in its file (`daphne_limits.LimitedWebRequest`),
    a receive that reads the file chunk by chunk as the application asks (the header is removed
    from SCOPE)."""
    headers = scope.get("headers") or []
    token = next((value.decode("latin-1") for name, value in headers if name == LAZY_BODY_HEADER), None)
    if token is None:
        return receive
    scope["headers"] = [(name, value) for name, value in headers if name != LAZY_BODY_HEADER]
    body = _lazy_bodies.get(token)  # closed and dropped when the request ends, read or not
    if body is None or body.closed:  # the request already ended
        return receive
    body.seek(0)
    placeholder_taken = False

    async def lazy_receive() -> dict:
        nonlocal placeholder_taken
        if not placeholder_taken:
            placeholder_taken = True
            message = await receive()  # daphne's empty body
            if message["type"] != "http.request":
                return message
        if body.closed:
            return await receive()  # after the body: only http.disconnect comes
        chunk = body.read(LAZY_BODY_CHUNK)
        more = len(chunk) == LAZY_BODY_CHUNK
        if not more:
            body.close()
        return {"type": "http.request", "body": chunk, "more_body": more}

    return lazy_receive


class BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """ASGI middleware: refuses an over-cap body with 413 before the application reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        receive = lazy_body_receive(scope, receive)
        path = scope.get("path", "")
        limit = body_limit_for(path)
        declared = declared_length(scope.get("headers", []))
        if declared is not None and declared > limit:
            await self._refuse(path, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(path, send)

    @staticmethod
    async def _refuse(path: str, send: Send) -> None:
        content_type, body = too_large_response(path)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
