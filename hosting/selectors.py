from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from finetune.selectors import LoraRef
from hosting.catalogue import STATIC_MODELS, FimFormat, ModelSpec
from hosting.models import (
    InferenceServer,
    IntegrationSettings,
    ModelAssignment,
    RegisteredModel,
    WorkerNode,
)


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


@dataclass(frozen=True)
class ServingEndpoint:
    """A running inference server speaking the OpenAI protocol, as the plugin API proxies to it."""

    model: str  # catalogue name of the base model
    url: str  # base URL, e.g. "http://127.0.0.1:8101"; requests go to f"{url}/v1/completions" etc.
    state: str  # "loading" | "ready" | "failed"
    reason: str  # why it failed, or ""
    n_ctx: int
    loras: tuple[str, ...] = ()  # LoRAs it serves, published as `base:run:checkpoint`


def serving_endpoints() -> list[ServingEndpoint]:
    """Every inference server of every live node.

    Contract between the serving side (assignments, supervisor; issue 7) and the plugin API (issue 7);
    implemented by the supervisor's state reporting.
    """
    from hosting.placement import alive_window

    alive = {node.name for node in worker_node_list_alive(within=alive_window())}
    servers = InferenceServer.objects.select_related("assignment").filter(node__in=alive)
    return [
        ServingEndpoint(
            model=server.assignment.model,
            url=server.url,
            state=server.state if server.state != InferenceServer.STOPPED else "failed",
            reason=server.reason,
            n_ctx=server.n_ctx or server.assignment.n_ctx,
            loras=tuple(server.loras),
        )
        for server in servers
        if server.assignment.node == server.node
    ]


@dataclass(frozen=True)
class ResolvedLoras:
    refs: list[LoraRef]  # what to load, in selection order, without duplicates
    problems: list[str]  # selections that resolve to nothing (shown, not fatal)


def _latest_completed_run(*, base_model: str) -> str | None:
    from finetune.selectors import lora_list  # newest completed run first

    refs = lora_list(base_model=base_model)
    return refs[0].run if refs else None


def assignment_loras(*, assignment: ModelAssignment) -> ResolvedLoras:
    """The LoRA checkpoints an assignment's selections point at right now."""
    from finetune.selectors import lora_resolve

    refs: dict[str, LoraRef] = {}
    problems = []
    for selection in assignment.loras.all():
        if selection.mode == ModelAssignment.LORA_BEST_OF_LATEST:
            run = _latest_completed_run(base_model=assignment.model)
            ref = lora_resolve(base_model=assignment.model, run=run) if run else None
            if ref is None:
                problems.append("best of latest: no completed fine-tune run yet")
                continue
        else:
            ref = lora_resolve(base_model=assignment.model, run=selection.run, checkpoint=selection.checkpoint or None)
            if ref is None:
                problems.append(f"{selection.run}:{selection.checkpoint or 'best'}: checkpoint not found")
                continue
        refs.setdefault(ref.published_name, ref)
    return ResolvedLoras(refs=list(refs.values()), problems=problems)


def hosting_fingerprint() -> str:
    """Changes whenever an assignment, a LoRA selection or a server's state changes (for caps_version)."""
    import hashlib

    parts = [
        f"{a.model}|{a.updated_at.isoformat()}|{sorted(a.loras.values_list('pk', flat=True))}"
        for a in ModelAssignment.objects.prefetch_related("loras")
    ]
    parts += [f"{s.assignment_id}|{s.state}|{','.join(s.loras)}" for s in InferenceServer.objects.all()]
    parts.append(repr(openai_integration()))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class OpenAIIntegration:
    enabled: bool
    has_key: bool
    models: tuple[str, ...]


def openai_integration() -> OpenAIIntegration:
    row = IntegrationSettings.objects.filter(pk=1).first()
    if row is None:
        return OpenAIIntegration(enabled=False, has_key=False, models=())
    return OpenAIIntegration(
        enabled=row.openai_enabled and bool(row.openai_key_encrypted),
        has_key=bool(row.openai_key_encrypted),
        models=tuple(row.openai_models),
    )


def openai_api_key() -> str | None:
    """The saved OpenAI key in clear, for the server's own calls to OpenAI; None when off or unset."""
    from hosting.services import secret_decrypt

    row = IntegrationSettings.objects.filter(pk=1).first()
    if row is None or not row.openai_enabled or not row.openai_key_encrypted:
        return None
    return secret_decrypt(row.openai_key_encrypted)


def assignment_list() -> list[ModelAssignment]:
    return list(ModelAssignment.objects.prefetch_related("loras").select_related("server"))


def assignment_get(*, model: str) -> ModelAssignment:
    from refact_site.exceptions import NotFoundError

    assignment = ModelAssignment.objects.filter(model=model).prefetch_related("loras").first()
    if assignment is None:
        raise NotFoundError(f"{model!r} is not hosted", field="model")
    return assignment


OPENAI_WARNING = "With the OpenAI integration, prompts and code are sent to a third-party provider (OpenAI)."


def assignment_view(*, assignment: ModelAssignment) -> dict[str, object]:
    """An assignment as the page and the API show it, with its server's state."""
    try:
        server = assignment.server
    except InferenceServer.DoesNotExist:
        server = None
    resolved = assignment_loras(assignment=assignment)
    if server is None:
        state, reason = "waiting", "waiting for the supervisor of " + (assignment.node or "a node")
    else:
        state, reason = server.state, server.reason
    return {
        "model": assignment.model,
        "backend": assignment.backend,
        "gpus": assignment.gpus,
        "share_gpu": assignment.share_gpu,
        "n_ctx": assignment.n_ctx,
        "concurrency": assignment.concurrency,
        "node": assignment.node,
        "devices": list(assignment.devices),
        "state": state,
        "reason": reason,
        "loras": [
            {"id": s.pk, "mode": s.mode, "run": s.run, "checkpoint": s.checkpoint} for s in assignment.loras.all()
        ],
        "published_loras": [ref.published_name for ref in resolved.refs],
        "lora_problems": resolved.problems,
    }


def node_views() -> list[dict[str, object]]:
    """Every registered node with its devices and the hosted models placed on each device."""
    from hosting.placement import alive_window

    alive = {node.name for node in worker_node_list_alive(within=alive_window())}
    placed: dict[tuple[str, str], list[str]] = {}
    for assignment in ModelAssignment.objects.all():
        for device in assignment.devices:
            placed.setdefault((assignment.node, device), []).append(assignment.model)
    return [
        {
            "name": node.name,
            "hostname": node.hostname,
            "embedded": node.embedded,
            "alive": node.name in alive,
            "heartbeat_at": node.heartbeat_at,
            "backends": list(node.backends or []),
            "devices": [
                {
                    "id": d.get("id", ""),
                    "kind": d.get("kind", ""),
                    "name": d.get("name", ""),
                    "memory_total_mb": int(d.get("memory_total_mb", 0)),
                    "memory_free_mb": int(d.get("memory_free_mb", 0)),
                    "models": placed.get((node.name, d.get("id", "")), []),
                }
                for d in node.devices
            ],
        }
        for node in WorkerNode.objects.all()
    ]


def catalogue_views() -> list[dict[str, object]]:
    hosted = set(ModelAssignment.objects.values_list("model", flat=True))
    return [
        {
            "name": spec.name,
            "family": spec.family,
            "description": spec.description,
            "n_ctx": spec.n_ctx,
            "required_memory_mb": spec.required_memory_mb,
            "capabilities": sorted(spec.capabilities),
            "backends": list(spec.backends),
            "max_shards": spec.max_shards,
            "cpu_capable": spec.cpu_capable,
            "hosted": spec.name in hosted,
        }
        for spec in model_catalogue()
        if not spec.third_party
    ]
