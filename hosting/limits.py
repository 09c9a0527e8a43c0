"""Per-key request rate and in-flight cap for the plugin API.

Redis (shared by every web process) when REDIS_URL is set, else counters in this process (the
embedded default runs one web process). Both answer without a thread hop, on the event loop.

In Redis each request in flight is a leased member of a sorted set, renewed while the request runs:
a web process that dies (SIGKILL, OOM, a lost machine) cannot give its slots back, and a plain counter
would keep them taken for as long as the key stays busy. Its leases simply lapse instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after: int


@dataclass
class Slot:
    """One request in flight; `renewal` keeps its Redis lease alive until it is given back."""

    key: str
    member: str = ""
    renewal: asyncio.Task | None = field(default=None, repr=False)
    released: bool = False


class Limiter:
    async def acquire(self, key: str, *, rate: int, window: int, max_inflight: int) -> Refusal | Slot:
        return (await self.admit(key, (), rate=rate, window=window, max_inflight=max_inflight))[0]

    async def admit(
        self, key: str, read: Sequence[str], *, rate: int, window: int, max_inflight: int
    ) -> tuple[Refusal | Slot, dict[str, int]]:
        """A slot for KEY or why not, and the integers the cache holds under READ (keys of Django's
        cache: the caller's failed-attempt counters and the auth generation), read in the same trip."""
        raise NotImplementedError

    async def release(self, slot: Slot) -> None:
        raise NotImplementedError


class MemoryLimiter(Limiter):
    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}
        self.inflight: dict[str, int] = {}

    async def admit(
        self, key: str, read: Sequence[str], *, rate: int, window: int, max_inflight: int
    ) -> tuple[Refusal | Slot, dict[str, int]]:
        return self._take(key, rate=rate, window=window, max_inflight=max_inflight), cache.get_many(read)

    def _take(self, key: str, *, rate: int, window: int, max_inflight: int) -> Refusal | Slot:
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
        return Slot(key=key)

    async def release(self, slot: Slot) -> None:
        self.inflight[slot.key] = max(0, self.inflight.get(slot.key, 0) - 1)


# One command, atomic: count the request in its rate window, take an in-flight slot (members are scored
# by when their lease ends: lapsed ones belonged to a dead process), give it back at once when over a
# limit, and read the cache keys after the first two. A pipeline of the same commands cost the web
# process twice the time (a reply to parse per command).
ADMIT = """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[3])
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
local inflight = redis.call('ZCARD', KEYS[2])
redis.call('EXPIRE', KEYS[2], lease + 1)
if count > tonumber(ARGV[5]) or inflight > tonumber(ARGV[6]) then
    redis.call('ZREM', KEYS[2], ARGV[4])
end
local found = {}
for index = 3, #KEYS do
    found[#found + 1] = redis.call('GET', KEYS[index])
end
return {count, inflight, found}
"""


class RedisLimiter(Limiter):
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = weakref.WeakKeyDictionary()
        self.scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = weakref.WeakKeyDictionary()

    def client(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self.clients.get(loop)
        if client is None:
            client = self.clients[loop] = redis.asyncio.Redis.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=2
            )
        return client

    def script(self):
        """ADMIT on this loop's client (redis-py sends its SHA, and the script itself once per server)."""
        loop = asyncio.get_running_loop()
        script = self.scripts.get(loop)
        if script is None:
            script = self.scripts[loop] = self.client().register_script(ADMIT)
        return script

    def inflight_key(self, key: str) -> str:
        return f"{self.prefix}:plugin:inflight:{key}"

    async def admit(
        self, key: str, read: Sequence[str], *, rate: int, window: int, max_inflight: int
    ) -> tuple[Refusal | Slot, dict[str, int]]:
        now = time.time()
        lease = settings.REFACT_PLUGIN_SLOT_LEASE_SECONDS
        rate_key = f"{self.prefix}:plugin:rate:{key}:{int(now // window)}"
        inflight_key = self.inflight_key(key)
        member = uuid.uuid4().hex
        # Django's Redis cache stores integers as they are (so that INCR works on them).
        keys = [rate_key, inflight_key, *(cache.make_key(name) for name in read)]
        count, inflight, found = await self.script()(
            keys=keys, args=[now, window + 1, lease, member, rate, max_inflight]
        )
        values = {name: int(value) for name, value in zip(read, found, strict=True) if value}
        if count > rate:
            return Refusal(f"rate limit of {rate} requests per {window} s reached", _until_next(now, window)), values
        if inflight > max_inflight:
            return Refusal(f"at most {max_inflight} requests at once per API key", 1), values
        slot = Slot(key=key, member=member)
        slot.renewal = asyncio.get_running_loop().create_task(self._renew(slot, lease))
        return slot, values

    async def _renew(self, slot: Slot, lease: int) -> None:
        """Push the lease forward a few times per lease while the request is still running."""
        inflight_key = self.inflight_key(slot.key)
        while True:
            await asyncio.sleep(lease / 3)
            if slot.released:  # its cancellation was swallowed (see release)
                return
            try:
                now = time.time()
                async with self.client().pipeline(transaction=True) as pipe:
                    pipe.zadd(inflight_key, {slot.member: now + lease}, xx=True)
                    pipe.expire(inflight_key, lease + 1)
                    await pipe.execute()
            except Exception as error:  # Redis away for a moment: the next renewal tries again
                logger.warning("could not renew an in-flight slot of key %s: %s", slot.key, error)

    async def release(self, slot: Slot) -> None:
        # The renewal is cancelled, not awaited: redis-py can swallow a cancellation that lands
        # mid-command (redis/redis-py#2028), and awaiting it then never returned, so the request never
        # ended and its renewal kept the slot taken for good. A renewal that goes on anyway stops at
        # its next wake-up, and its XX update cannot bring back the member removed here.
        slot.released = True
        if slot.renewal is not None:
            slot.renewal.cancel()
        await self.client().zrem(self.inflight_key(slot.key), slot.member)


def _until_next(now: float, window: int) -> int:
    return max(1, math.ceil(window - now % window))


_limiter: Limiter | None = None


def limiter() -> Limiter:
    global _limiter
    if _limiter is None:
        _limiter = RedisLimiter(settings.REDIS_URL, settings.REDIS_PREFIX) if settings.REDIS_URL else MemoryLimiter()
    return _limiter


async def limit_admit(key: str, read: Sequence[str] = ()) -> tuple[Refusal | Slot, dict[str, int]]:
    return await limiter().admit(
        key,
        read,
        rate=settings.REFACT_PLUGIN_RATE_LIMIT,
        window=settings.REFACT_PLUGIN_RATE_WINDOW,
        max_inflight=settings.REFACT_PLUGIN_MAX_INFLIGHT,
    )


async def limit_release(slot: Slot) -> None:
    await limiter().release(slot)
