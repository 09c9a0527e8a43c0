"""The per-key in-flight cap in Redis: slots of a process that died lapse; slots of live requests do not."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from django.conf import settings as django_settings

from hosting.limits import RedisLimiter, Refusal, Slot

pytestmark = pytest.mark.services_only
LIMITS = {"rate": 1000, "window": 60, "max_inflight": 2}


@pytest.fixture
def limiter(settings) -> RedisLimiter:
    settings.REFACT_PLUGIN_SLOT_LEASE_SECONDS = 3  # renewed every second
    return RedisLimiter(django_settings.REDIS_URL, django_settings.REDIS_PREFIX)


def test_slots_of_a_dead_process_lapse_after_their_lease(limiter):
    key = f"dead-{uuid.uuid4().hex}"

    async def scenario() -> None:
        held = [await limiter.acquire(key, **LIMITS) for _ in range(2)]
        assert all(isinstance(slot, Slot) for slot in held)
        refused = await limiter.acquire(key, **LIMITS)
        assert isinstance(refused, Refusal) and "at most 2 requests at once" in refused.message
        # The process dies: its renewals stop and nobody gives the slots back.
        for slot in held:
            slot.renewal.cancel()
        await asyncio.sleep(3.3)
        again = await limiter.acquire(key, **LIMITS)
        assert isinstance(again, Slot)
        await limiter.release(again)

    asyncio.run(scenario())


def test_a_live_request_keeps_its_slot_past_the_lease_and_gives_it_back(limiter):
    key = f"live-{uuid.uuid4().hex}"

    async def scenario() -> None:
        held = [await limiter.acquire(key, **LIMITS) for _ in range(2)]
        await asyncio.sleep(4.5)  # one and a half leases: only the renewals keep these slots
        assert isinstance(await limiter.acquire(key, **LIMITS), Refusal)
        for slot in held:
            await limiter.release(slot)
        for _ in range(2):
            assert isinstance(await limiter.acquire(key, **LIMITS), Slot)

    asyncio.run(scenario())


def test_a_renewal_that_swallows_its_cancellation_neither_holds_up_the_request_nor_the_slot(limiter, monkeypatch):
    """redis-py can turn a cancellation that lands mid-command into an error (redis/redis-py#2028).
    Giving the slot back used to wait for the renewal, which then never ended: the request hung and
    its renewal kept the slot taken for good."""
    import redis.asyncio.client
    import redis.exceptions

    key = f"swallow-{uuid.uuid4().hex}"

    async def command_in_flight(self, *args, **kwargs):
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            raise redis.exceptions.ConnectionError("connection closed while reading") from None
        return [True, True]

    async def scenario() -> None:
        slot = await limiter.acquire(key, **LIMITS)
        monkeypatch.setattr(redis.asyncio.client.Pipeline, "execute", command_in_flight)
        await asyncio.sleep(1.2)  # the first renewal (every second) is mid-command
        started = time.monotonic()
        await asyncio.wait_for(limiter.release(slot), 5)
        assert time.monotonic() - started < 0.5  # it waited for the renewal only with the bug
        monkeypatch.undo()
        assert await limiter.client().zscore(limiter.inflight_key(key), slot.member) is None
        await asyncio.sleep(1.5)  # the renewal wakes up once more: it stops, and renews nothing
        assert slot.renewal.done()
        assert await limiter.client().zscore(limiter.inflight_key(key), slot.member) is None

    asyncio.run(scenario())


def test_the_rate_limit_counts_refusals_and_the_script_survives_a_redis_that_forgot_it(limiter):
    """One script takes the slot (hosting.limits.ADMIT); Redis forgets scripts when it restarts."""
    key = f"rate-{uuid.uuid4().hex}"
    limits = {"rate": 3, "window": 60, "max_inflight": 1}

    async def scenario() -> None:
        first = await limiter.acquire(key, **limits)
        assert isinstance(first, Slot)
        busy = await limiter.acquire(key, **limits)  # refused, and counted: the second request of three
        assert isinstance(busy, Refusal) and busy.retry_after == 1
        await limiter.release(first)
        await limiter.client().script_flush()
        third = await limiter.acquire(key, **limits)
        assert isinstance(third, Slot)
        await limiter.release(third)
        over = await limiter.acquire(key, **limits)
        assert isinstance(over, Refusal) and "rate limit of 3 requests per 60 s" in over.message
        assert 1 <= over.retry_after <= 60
        assert await limiter.client().zcard(limiter.inflight_key(key)) == 0  # a refusal holds no slot

    asyncio.run(scenario())
