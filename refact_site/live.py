"""Live events to browsers over Channels: the row is the truth, the event is a nudge."""

from __future__ import annotations

import logging
import re
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def group_name(*parts: object) -> str:
    """A valid channel-layer group name from parts such as ("run", 12)."""
    return re.sub(r"[^0-9A-Za-z_.-]", "_", ".".join(str(part) for part in parts))[:90]


def publish(group: str, event: dict[str, Any]) -> None:
    """Send one event to every socket in the group; failures are logged, never raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "live.event", "event": event})
    except Exception:  # a down channel layer must not stop a scan or a training run
        logger.warning("live event to %s not delivered", group, exc_info=True)
