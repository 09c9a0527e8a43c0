"""Per-key request rate and in-flight cap for the plugin API.

Redis (shared by every web process) when REDIS_URL is set, else counters in this process (the
embedded default runs one web process). Both answer without a thread hop, on the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from dataclasses import dataclass

from django.conf import settings

# An in-flight counter survives a crashed process at most this long.
INFLIGHT_TTL_SECONDS = 900


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after: int


class MemoryLimiter:
    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}
        self.inflight: dict[str, int] = {}

    async def acquire(self, key: str, *, rate: int, window: int, max_inflight: int) -> Refusal | None:
        now = time.time()
        slot = int(now // window)
        current_slot, count = self.windows.get(key, (slot, 0))
        if current_slot != slot:
            count = 0
        if count >= rate:
            return Refusal(f"rate limit of {rate} requests per {window} s reached", _until_next(now, window))
        if self.inflight.get(key, 0) >= max_inflight:
            return Refusal(f"at most {max_inflight} requests at once per API key", 1)
        self.windows[key] = (slot, count + 1)
        self.inflight[key] = self.inflight.get(key, 0) + 1
        return None

    async def release(self, key: str) -> None:
        self.inflight[key] = max(0, self.inflight.get(key, 0) - 1)


class RedisLimiter:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = weakref.WeakKeyDictionary()

    def client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            client = self.clients[loop] = redis.asyncio.Redis.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=2
            )
        return client

    async def acquire(self, key: str, *, rate: int, window: int, max_inflight: int) -> Refusal | None:
        now = time.time()
        rate_key = f"{self.prefix}:plugin:rate:{key}:{int(now // window)}"
        inflight_key = f"{self.prefix}:plugin:inflight:{key}"
        async with self.client().pipeline(transaction=False) as pipe:
            pipe.incr(rate_key)
            pipe.expire(rate_key, window + 1)
            pipe.incr(inflight_key)
            pipe.expire(inflight_key, INFLIGHT_TTL_SECONDS)
            count, _, inflight, _ = await pipe.execute()
        if count > rate or inflight > max_inflight:
            await self.client().decr(inflight_key)
            if count > rate:
                return Refusal(f"rate limit of {rate} requests per {window} s reached", _until_next(now, window))
            return Refusal(f"at most {max_inflight} requests at once per API key", 1)
        return None

    async def release(self, key: str) -> None:
        await self.client().decr(f"{self.prefix}:plugin:inflight:{key}")


def _until_next(now: float, window: int) -> int:
    return max(1, math.ceil(window - now % window))


_limiter: MemoryLimiter | RedisLimiter | None = None


def limiter() -> MemoryLimiter | RedisLimiter:
    global _limiter
    if _limiter is None:
        _limiter = RedisLimiter(settings.REDIS_URL, settings.REDIS_PREFIX) if settings.REDIS_URL else MemoryLimiter()
    return _limiter


async def limit_acquire(key: str) -> Refusal | None:
    return await limiter().acquire(
        key,
        rate=settings.REFACT_PLUGIN_RATE_LIMIT,
        window=settings.REFACT_PLUGIN_RATE_WINDOW,
        max_inflight=settings.REFACT_PLUGIN_MAX_INFLIGHT,
    )


async def limit_release(key: str) -> None:
    await limiter().release(key)
