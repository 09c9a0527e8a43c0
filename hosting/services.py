from __future__ import annotations

import os
import socket

from django.utils import timezone

from hosting.models import WorkerNode


def worker_node_heartbeat(*, name: str, queues: list[str], embedded: bool, starting: bool = False) -> WorkerNode:
    now = timezone.now()
    defaults: dict[str, object] = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "embedded": embedded,
        "heartbeat_at": now,
    }
    if starting:
        defaults["started_at"] = now
    node, _ = WorkerNode.objects.update_or_create(name=name, defaults=defaults)
    return node


def worker_node_remove(*, name: str) -> None:
    WorkerNode.objects.filter(name=name).delete()
