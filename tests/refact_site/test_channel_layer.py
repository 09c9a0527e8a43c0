from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

pytestmark = pytest.mark.services_only


def test_an_idle_receive_outlives_the_blocking_pop():
    """A socket with nothing to say for longer than channels-redis' 5 s BZPOPMIN must keep waiting."""

    async def idle_receive() -> Exception | None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        try:
            await asyncio.wait_for(layer.receive(channel), timeout=7)
        except Exception as error:
            return error
        return None

    error = asyncio.run(idle_receive())
    # only our own deadline may end it, not "redis.exceptions.TimeoutError: Timeout reading from ..."
    assert type(error) is TimeoutError, repr(error)
