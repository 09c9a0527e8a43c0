"""Forwarding plugin requests to an inference server: one pooled aiohttp session per event loop.

aiohttp rather than httpx: its C HTTP parser makes relaying a 16-token stream cost about a third
of the CPU (benchmarks/api_overhead.py), and on a machine whose cores also run the model that is
generation time. Streams are relayed chunk by chunk as they arrive (no buffering); closing an
upstream response drops its connection, which is how the inference server learns the client went away.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
from collections.abc import AsyncIterator

import aiohttp
from django.conf import settings

# One session per event loop (daphne has one). Tests and benchmarks run short-lived loops too: the
# sessions of loops that have closed are closed when the next one is made. A request served through
# Django's handler (the test client: a loop per request) brings a session of its own instead.
_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_request_session: contextvars.ContextVar[aiohttp.ClientSession | None] = contextvars.ContextVar(
    "upstream_session", default=None
)
# What counts as the inference server failing: refused or dropped connections, bad HTTP, timeouts.
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def session_new() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=settings.REFACT_UPSTREAM_CONNECT_TIMEOUT + 5,  # includes waiting for a pooled connection
            sock_connect=settings.REFACT_UPSTREAM_CONNECT_TIMEOUT,
            sock_read=settings.REFACT_UPSTREAM_READ_TIMEOUT,
        ),
        # Inference servers are ours, on a private network; no environment proxies in between.
        trust_env=False,
    )


async def upstream_session() -> aiohttp.ClientSession:
    session = _request_session.get()
    if session is not None:
        return session
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        for other in [other for other in _sessions if other.is_closed()]:
            await _sessions.pop(other).close()  # its loop is gone: this only marks it closed
        session = _sessions[loop] = session_new()
    return session


@atexit.register
def _sessions_close() -> None:
    """At exit the loops have stopped. A session whose loop is still open (the server's) is closed on
    it; the others are let go (the OS closes their sockets)."""
    for loop, session in _sessions.items():
        if loop.is_closed() or loop.is_running():
            session.detach()
        else:
            loop.run_until_complete(session.close())


def request_session_set(session: aiohttp.ClientSession) -> contextvars.Token:
    """Use SESSION for the upstream requests of the current context (and tasks started from it)."""
    return _request_session.set(session)


def request_session_reset(token: contextvars.Token) -> None:
    _request_session.reset(token)


async def upstream_post(url: str, body: bytes) -> aiohttp.ClientResponse:
    session = await upstream_session()
    return await session.post(url, data=body, headers={"Content-Type": "application/json"}, allow_redirects=False)


def with_caps_version(line: bytes, prefix: bytes) -> bytes:
    """`data: {...}` → `data: {"caps_version": N, ...}` without parsing the JSON (cheap per token)."""
    if line.startswith(b"data: {"):
        return b"data: {" + prefix + line[7:]
    return line


class _SilenceWatch:
    """Fails a stream once the inference server has sent nothing for `REFACT_UPSTREAM_READ_TIMEOUT`.

    aiohttp's own read timeout (sock_read) re-arms a timer on every chunk, about 8% of a relayed
    stream's CPU. Here a chunk only notes the time; the one timer, when it fires, moves itself to
    the last chunk's deadline, so it fires at most once per timeout period while data flows."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.seconds = settings.REFACT_UPSTREAM_READ_TIMEOUT
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            # The headers have come: this watch takes over (start_timeout drops the armed timer).
            connection.protocol.read_timeout = None
            connection.protocol.start_timeout()
        self.timer = self.loop.call_later(self.seconds, self.check)

    def check(self) -> None:
        deadline = self.last + self.seconds
        if self.loop.time() + 0.01 < deadline:  # a chunk came since: wait for the new deadline
            self.timer = self.loop.call_at(deadline, self.check)
            return
        error = aiohttp.ServerTimeoutError(f"the inference server sent nothing for {self.seconds} s")
        self.response.content.set_exception(error)

    def stop(self) -> None:
        self.timer.cancel()


async def relay_events(
    response: aiohttp.ClientResponse, *, caps_version: int, counter: dict[str, int]
) -> AsyncIterator[bytes]:
    """The upstream SSE stream, each event forwarded as soon as its line is complete."""
    prefix = f'"caps_version":{caps_version},'.encode()
    pending = b""
    watch = _SilenceWatch(response)
    try:
        async for chunk in response.content.iter_any():
            watch.last = watch.loop.time()
            pending += chunk
            cut = pending.rfind(b"\n")
            if cut < 0:
                continue
            complete, pending = pending[: cut + 1], pending[cut + 1 :]
            lines = complete.split(b"\n")
            counter["events"] += sum(1 for line in lines if line.startswith(b"data: {"))
            yield b"\n".join(with_caps_version(line, prefix) for line in lines)
    finally:
        watch.stop()
    if pending:
        yield with_caps_version(pending, prefix)
