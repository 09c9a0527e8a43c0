"""Python 3.11 fixes this server needs until its images move to Python 3.12."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_stdlib_wait_for = asyncio.wait_for


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """`asyncio.wait_for` as Python 3.12 has it, on `asyncio.timeout`.

    Python 3.11's returns normally when a cancellation lands just as the awaited operation completes
    (python/cpython#86296). redis-py writes every command through it, so a cancelled channel-layer
    receive (a websocket closing) went on polling Redis for good, about one cancellation in a hundred,
    and the event loop it ran on could never close."""
    if timeout is None or timeout <= 0:
        return await _stdlib_wait_for(awaitable, timeout)
    async with asyncio.timeout(timeout):
        return await awaitable


def install() -> None:
    if sys.version_info < (3, 12):
        asyncio.wait_for = wait_for  # type: ignore[assignment]
