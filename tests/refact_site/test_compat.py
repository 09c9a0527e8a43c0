"""The Python 3.11 fix of refact_site.compat: a task cancelled just as what it awaits completes is told so.

Without it, a websocket that closed left its channel-layer receive polling Redis for good, and the event
loop it ran on could not close (a CI run hung at exit that way)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.conf import settings

from refact_site import compat

WaitFor = Callable[[Awaitable[Any], float | None], Awaitable[Any]]


def told_of_a_cancellation_that_lands_on_completion(wait_for: WaitFor) -> bool:
    async def scenario() -> bool:
        written = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(wait_for(written, 10))
        await asyncio.sleep(0)
        written.set_result("sent")  # the write completes and, in the same tick, the task is cancelled
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    return asyncio.run(scenario())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12's wait_for keeps the cancellation")
def test_the_stdlib_wait_for_of_this_python_loses_that_cancellation() -> None:
    assert not told_of_a_cancellation_that_lands_on_completion(compat._stdlib_wait_for)


def test_the_installed_wait_for_keeps_it_and_still_times_out() -> None:
    assert asyncio.wait_for is compat.wait_for or sys.version_info >= (3, 12)
    assert told_of_a_cancellation_that_lands_on_completion(asyncio.wait_for)

    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    async def fast() -> str:
        return "on time"

    async def scenario() -> tuple[str, bool]:
        answer = await asyncio.wait_for(fast(), 1)
        try:
            await asyncio.wait_for(slow(), 0.05)
        except TimeoutError:
            return answer, True
        return answer, False

    assert asyncio.run(scenario()) == ("on time", True)


@pytest.mark.services_only
def test_a_cancelled_channel_layer_receive_always_ends() -> None:
    """What a closing websocket does to its consumer, 150 times at random moments of the BZPOPMIN round
    trip. Before the fix, about one in a hundred went on receiving (the task ignored its cancellation)."""
    from channels.layers import get_channel_layer

    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layer = get_channel_layer()
    rng = random.Random(7)

    async def once() -> bool:
        receiving = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        await asyncio.sleep(rng.random() * 0.01)
        receiving.cancel()
        finished, _ = await asyncio.wait([receiving], timeout=10)
        return bool(finished) and receiving.cancelled()

    for attempt in range(150):
        assert asyncio.run(once()), f"receive {attempt} went on after its cancellation"
