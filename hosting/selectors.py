from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hosting.catalogue import STATIC_MODELS, FimFormat, ModelSpec
from hosting.models import RegisteredModel, WorkerNode


def worker_node_list_alive(*, within: timedelta) -> list[WorkerNode]:
    return list(WorkerNode.objects.filter(heartbeat_at__gte=timezone.now() - within))


def registered_model_spec(row: RegisteredModel) -> ModelSpec:
    return ModelSpec(
        name=row.name,
        family=row.family,
        weights=row.weights,
        n_ctx=row.n_ctx,
        required_memory_mb=row.required_memory_mb,
        capabilities=frozenset(row.capabilities),
        backends=tuple(row.backends),
        fim=FimFormat(**row.fim) if row.fim else None,
        lora_target_modules=tuple(row.lora_target_modules),
        description=row.description,
        cpu_capable=row.cpu_capable,
        extra={"registered": True},
    )


def model_catalogue() -> list[ModelSpec]:
    """Every model this server knows: the static catalogue plus locally registered models."""
    return [*STATIC_MODELS, *(registered_model_spec(row) for row in RegisteredModel.objects.all())]


def model_get(name: str) -> ModelSpec | None:
    static = next((spec for spec in STATIC_MODELS if spec.name == name), None)
    if static is not None:
        return static
    row = RegisteredModel.objects.filter(name=name).first()
    return registered_model_spec(row) if row else None
