from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hosting.models import WorkerNode


def worker_node_list_alive(*, within: timedelta) -> list[WorkerNode]:
    return list(WorkerNode.objects.filter(heartbeat_at__gte=timezone.now() - within))
