"""The per-key in-flight cap in Redis: slots of a process that died lapse; slots of live requests do not."""

from __future__ import annotations

import asyncio
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
