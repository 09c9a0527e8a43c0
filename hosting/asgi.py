"""The hot plugin endpoints (completions, chat, embeddings) as a plain ASGI app, in front of Django.

Each streamed completion is mostly a relay of small SSE events, and Django's request cycle costs
more than the relay: a request object, the request_started/finished signals (two thread hops), a new
thread and database connection per request, and per event the StreamingHttpResponse machinery. On a
machine whose cores also run the model that CPU is taken from generation. So these three paths skip
it: the body is read here, authentication, validation and routing run in one trip to the database
thread (which keeps its connection across requests), and events go from the inference server's
response to the client's connection as they arrive. A client that hangs up cancels the relay, which
closes the upstream response: the inference server stops generating.

The answers are those of the Django views (`hosting.plugin_api`), which share every line of logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.http import HttpResponse
from django.http.request import HttpHeaders

from hosting.plugin_api import ENDPOINTS, Stream, answer, error_response

logger = logging.getLogger(__name__)


class PluginRequest:
    """What the plugin endpoints read of a request, taken straight from the ASGI scope."""

    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.body = body
        client = scope.get("client")
        meta = {"REMOTE_ADDR": client[0] if client else ""}
        for name, value in scope.get("headers", ()):
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            # Repeated headers are joined, as Django's ASGIRequest joins them.
            meta[key] = f"{meta[key]},{value.decode('latin-1')}" if key in meta else value.decode("latin-1")
        self.META = meta
        self.headers = HttpHeaders(meta)


async def _read_body(receive) -> bytes | None:
    """The whole request body; None when the client hung up first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_whole(response: HttpResponse, send) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    headers.append((b"content-length", str(len(response.content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


async def send_stream(stream: Stream, receive, send) -> None:
    """Relay the events until they end or the client hangs up, whichever comes first."""

    async def relay() -> None:
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in stream.headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for event in stream.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def hang_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relaying = asyncio.ensure_future(relay())
    watching = asyncio.ensure_future(hang_up())
    try:
        await asyncio.wait((relaying, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relaying, watching):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Runs the relay's cleanup (usage row, upstream closed) however it ended, then gives the slot back.
        await stream.events.aclose()
        await stream.finish()
    if not relaying.cancelled() and relaying.exception() is not None:
        raise relaying.exception()  # type: ignore[misc]


async def plugin_app(scope: dict[str, Any], receive, send) -> None:
    body = await _read_body(receive)
    if body is None:
        return
    try:
        result = await answer(PluginRequest(scope, body))
    except Exception:
        logger.exception("plugin request %s %s failed", scope["method"], scope["path"])
        result = error_response(500, "internal server error")
    if isinstance(result, Stream):
        await send_stream(result, receive, send)
    else:
        await _send_whole(result, send)


def with_plugin_fast_path(application):
    """ASGI app: the hot plugin paths to `plugin_app`, everything else to APPLICATION."""

    async def dispatch(scope, receive, send):
        if scope["type"] == "http" and scope["path"] in ENDPOINTS:
            return await plugin_app(scope, receive, send)
        return await application(scope, receive, send)

    return dispatch
