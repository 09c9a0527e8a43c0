from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from refact_site.live import group_name

# Close codes in the private range: the browser can tell "log in" from "not yours".
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Joins one group chosen by `group_for` (which also checks access) and relays its events."""

    group: str | None = None

    def group_for(self, user: Any, **url_kwargs: Any) -> str | None:
        """The group this user may watch at this URL, or None (refused as not found)."""
        raise NotImplementedError

    def snapshot(self, user: Any, **url_kwargs: Any) -> dict[str, Any] | None:
        """The current state sent on connect, so that a late subscriber misses nothing."""
        return None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        group = await database_sync_to_async(self.group_for)(user, **kwargs)
        if group is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        initial = await database_sync_to_async(self.snapshot)(user, **kwargs)
        if initial is not None:
            await self.send_json(initial)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        # Sockets are for server pushes; anything the browser sends is ignored unread (decoding it first
        # would let a malformed frame raise and take the socket down).
        return None

    async def live_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


class UserEventsConsumer(LiveConsumer):
    """Notifications addressed to one user (job finished, key created...)."""

    def group_for(self, user: Any, **url_kwargs: Any) -> str | None:
        return group_name("user", user.pk)
