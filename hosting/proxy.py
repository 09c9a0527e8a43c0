"""Forwarding plugin requests to an inference server: one pooled async HTTP client per event loop.

Streams are relayed chunk by chunk as they arrive (no buffering); closing the relay closes the
upstream connection, which is how the inference server learns the client went away.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator

import httpx
from django.conf import settings

# One client per event loop (daphne has one; tests and benchmarks may make others).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def upstream_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.REFACT_UPSTREAM_CONNECT_TIMEOUT,
                read=settings.REFACT_UPSTREAM_READ_TIMEOUT,
                write=10.0,
                pool=5.0,
            ),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30),
            # Inference servers are ours, on a private network; no environment proxies in between.
            trust_env=False,
            follow_redirects=False,
        )
    return client


def with_caps_version(line: bytes, prefix: bytes) -> bytes:
    """`data: {...}` → `data: {"caps_version": N, ...}` without parsing the JSON (cheap per token)."""
    if line.startswith(b"data: {"):
        return b"data: {" + prefix + line[7:]
    return line


async def relay_events(response: httpx.Response, *, caps_version: int, counter: dict[str, int]) -> AsyncIterator[bytes]:
    """The upstream SSE stream, each event forwarded as soon as its line is complete."""
    prefix = f'"caps_version":{caps_version},'.encode()
    pending = b""
    async for chunk in response.aiter_raw():
        pending += chunk
        cut = pending.rfind(b"\n")
        if cut < 0:
            continue
        complete, pending = pending[: cut + 1], pending[cut + 1 :]
        lines = complete.split(b"\n")
        counter["events"] += sum(1 for line in lines if line.startswith(b"data: {"))
        yield b"\n".join(with_caps_version(line, prefix) for line in lines)
    if pending:
        yield with_caps_version(pending, prefix)
