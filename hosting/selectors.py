from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hosting.catalogue import STATIC_MODELS, ModelSpec
from hosting.models import WorkerNode


def worker_node_list_alive(*, within: timedelta) -> list[WorkerNode]:
    return list(WorkerNode.objects.filter(heartbeat_at__gte=timezone.now() - within))


def model_catalogue() -> list[ModelSpec]:
    """Every model this server knows: the static catalogue (later: plus locally registered models)."""
    return list(STATIC_MODELS)


def model_get(name: str) -> ModelSpec | None:
    return next((spec for spec in model_catalogue() if spec.name == name), None)
