from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services import audit_record
from hosting.catalogue import (
    CHAT,
    COMPLETION,
    FINETUNE,
    LLAMA_STYLE_MODULES,
    QWEN_FIM,
    TRANSFORMERS,
    VLLM,
    static_model_get,
)
from hosting.models import (
    InferenceServer,
    IntegrationSettings,
    LoraSelection,
    ModelAssignment,
    RegisteredModel,
    WorkerNode,
)
from refact_site.exceptions import ApplicationError, NotFoundError

if TYPE_CHECKING:
    from gpu_worker.tiny_model import TinyModelConfig

MODEL_NAME = re.compile(r"[0-9A-Za-z_.\-/]{1,100}")


def worker_node_heartbeat(
    *,
    name: str,
    queues: list[str],
    embedded: bool,
    starting: bool = False,
    devices: list[dict[str, object]] | None = None,
    backends: list[str] | None = None,
) -> WorkerNode:
    now = timezone.now()
    defaults: dict[str, object] = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
        "embedded": embedded,
        "heartbeat_at": now,
    }
    if devices is not None:
        defaults["devices"] = devices
    if backends is not None:
        defaults["backends"] = backends
    if starting:
        defaults["started_at"] = now
    node, _ = WorkerNode.objects.update_or_create(name=name, defaults=defaults)
    return node


def worker_node_remove(*, name: str) -> None:
    WorkerNode.objects.filter(name=name).delete()


def tiny_model_create(*, name: str, config: TinyModelConfig | None = None) -> RegisteredModel:
    """Build a small random-weight model under the data directory and register it in the catalogue."""
    if static_model_get(name) is not None or RegisteredModel.objects.filter(name=name).exists():
        raise ApplicationError(f"a model named {name!r} already exists", field="name")
    if not MODEL_NAME.fullmatch(name):
        raise ApplicationError("model names use letters, digits and . _ - / (at most 100 characters)", field="name")
    from gpu_worker.tiny_model import build_tiny_model  # torch: worker side only

    relative = Path("models") / name
    target = settings.DATA_DIR / relative
    if target.exists():
        shutil.rmtree(target)
    info = build_tiny_model(target, config)
    return tiny_model_register(name=name, weights=relative, parameters=int(info["parameters"]))


def tiny_model_register(*, name: str, weights: Path, parameters: int) -> RegisteredModel:
    """Add already-built tiny-model weights (relative to the data directory) to the catalogue."""
    return RegisteredModel.objects.create(
        name=name,
        family="llama",
        weights=str(weights),
        n_ctx=1024,
        required_memory_mb=64,
        capabilities=[COMPLETION, CHAT, FINETUNE],
        backends=[TRANSFORMERS, VLLM],
        fim={
            "template": QWEN_FIM.template,
            "prefix_token": QWEN_FIM.prefix_token,
            "suffix_token": QWEN_FIM.suffix_token,
            "middle_token": QWEN_FIM.middle_token,
            "eot_token": QWEN_FIM.eot_token,
        },
        lora_target_modules=list(LLAMA_STYLE_MODULES),
        cpu_capable=True,
        description=f"Tiny random-weight Llama ({parameters:,} parameters) for CPU demos and tests.",
    )


# ---------------------------------------------------------------- audit


def _audit(*, actor: object | None, action: str, target: object, diff: dict | None = None) -> None:
    """An audit row for every admin-visible change (accounts' append-only log)."""
    audit_record(actor=actor, action=action, target=target, diff=diff or {})


# ---------------------------------------------------------------- assignments


def model_assign(
    *,
    actor: object | None,
    model: str,
    backend: str | None = None,
    gpus: int | None = None,
    share_gpu: bool = False,
    n_ctx: int | None = None,
    concurrency: int | None = None,
) -> ModelAssignment:
    """Add (or change) a hosted model; placement refuses what cannot fit before anything starts."""
    from hosting.placement import check_request, nodes_alive, placement_find
    from hosting.selectors import model_get

    spec = model_get(model)
    if spec is None:
        raise NotFoundError(f"no model {model!r} in the catalogue", field="model")
    existing = ModelAssignment.objects.filter(model=model).first()
    nodes = nodes_alive()
    any_gpu = any(d.get("kind") == "gpu" for node in nodes for d in node.devices)
    any_vllm = any(VLLM in (node.backends or []) for node in nodes)
    if backend is None:
        if existing:
            backend = existing.backend
        else:  # vLLM where a GPU node runs it, unless the model is asked to run on the CPU
            backend = VLLM if any_vllm and VLLM in spec.backends and gpus != 0 else TRANSFORMERS
    if gpus is None:
        gpus = 1 if any_gpu or not spec.cpu_capable else 0
        if existing and existing.backend == backend:
            gpus = existing.gpus
        if backend == VLLM:
            gpus = max(gpus, 1)
    n_ctx = n_ctx if n_ctx is not None else (existing.n_ctx if existing else spec.n_ctx)
    concurrency = concurrency if concurrency is not None else (existing.concurrency if existing else 8)
    check_request(spec=spec, backend=backend, gpus=gpus, n_ctx=n_ctx, concurrency=concurrency)
    placement = placement_find(spec=spec, backend=backend, gpus=gpus, share_gpu=share_gpu, exclude=model, nodes=nodes)
    with transaction.atomic():
        assignment, created = ModelAssignment.objects.select_for_update().get_or_create(
            model=model,
            defaults={"n_ctx": n_ctx},
        )
        before = {f: getattr(assignment, f) for f in ("backend", "gpus", "share_gpu", "n_ctx", "concurrency", "node")}
        assignment.backend = backend
        assignment.gpus = gpus
        assignment.share_gpu = share_gpu
        assignment.n_ctx = n_ctx
        assignment.concurrency = concurrency
        assignment.node = placement.node
        assignment.devices = placement.devices
        assignment.save()
        after = {f: getattr(assignment, f) for f in before}
        _audit(
            actor=actor,
            action="hosting.model_assign" if created else "hosting.model_reassign",
            target=assignment,
            diff=after if created else {k: [before[k], v] for k, v in after.items() if before[k] != v},
        )
    return assignment


def model_unassign(*, actor: object | None, model: str) -> None:
    with transaction.atomic():
        assignment = ModelAssignment.objects.filter(model=model).first()
        if assignment is None:
            raise NotFoundError(f"{model!r} is not hosted", field="model")
        _audit(actor=actor, action="hosting.model_unassign", target=assignment, diff={"model": model})
        assignment.delete()


def lora_activate(
    *,
    actor: object | None,
    model: str,
    mode: str,
    run: str | None = None,
    checkpoint: str | None = None,
) -> ModelAssignment:
    """off: serve the base alone. best_of_latest / specific: add that LoRA to the ones served (several may be)."""
    from finetune.selectors import lora_resolve

    assignment = ModelAssignment.objects.filter(model=model).first()
    if assignment is None:
        raise NotFoundError(f"{model!r} is not hosted: assign it first", field="model")
    with transaction.atomic():
        if mode == ModelAssignment.LORA_OFF:
            removed = [str(selection) for selection in assignment.loras.all()]
            assignment.loras.all().delete()
            _audit(actor=actor, action="hosting.lora_off", target=assignment, diff={"removed": removed})
        elif mode == ModelAssignment.LORA_BEST_OF_LATEST:
            selection, _ = LoraSelection.objects.get_or_create(assignment=assignment, mode=mode, run="", checkpoint="")
            _audit(actor=actor, action="hosting.lora_activate", target=assignment, diff={"lora": "best of latest"})
        elif mode == ModelAssignment.LORA_SPECIFIC:
            if not run:
                raise ApplicationError("name the run", field="run")
            ref = lora_resolve(base_model=model, run=run, checkpoint=checkpoint or None)
            if ref is None:
                what = f"checkpoint {checkpoint!r} of run {run!r}" if checkpoint else f"best checkpoint of run {run!r}"
                raise NotFoundError(f"no {what} for {model}", field="checkpoint" if checkpoint else "run")
            LoraSelection.objects.get_or_create(assignment=assignment, mode=mode, run=run, checkpoint=checkpoint or "")
            _audit(actor=actor, action="hosting.lora_activate", target=assignment, diff={"lora": ref.published_name})
        else:
            raise ApplicationError("mode must be off, best_of_latest or specific", field="mode")
        ModelAssignment.objects.filter(pk=assignment.pk).update(updated_at=timezone.now())
    assignment.refresh_from_db()
    return assignment


def lora_deactivate(*, actor: object | None, model: str, selection_id: int) -> None:
    selection = LoraSelection.objects.filter(pk=selection_id, assignment__model=model).first()
    if selection is None:
        raise NotFoundError(f"no LoRA selection {selection_id} on {model!r}", field="selection")
    _audit(actor=actor, action="hosting.lora_deactivate", target=selection.assignment, diff={"lora": str(selection)})
    selection.delete()


# ---------------------------------------------------------------- supervisor state


def inference_server_report(
    *,
    model: str,
    node: str,
    state: str,
    reason: str = "",
    url: str = "",
    pid: int | None = None,
    n_ctx: int = 0,
    loras: list[str] | None = None,
    restarts: int = 0,
) -> None:
    """The supervisor's view of one server; ignored once the assignment is gone."""
    assignment = ModelAssignment.objects.filter(model=model).first()
    if assignment is None:
        return
    InferenceServer.objects.update_or_create(
        assignment=assignment,
        defaults={
            "node": node,
            "state": state,
            "reason": reason[:2000],
            "url": url,
            "pid": pid,
            "n_ctx": n_ctx,
            "loras": loras or [],
            "restarts": restarts,
        },
    )


def assignment_claim(*, model: str, node: str, devices: list[str], previous_node: str) -> bool:
    """Move an assignment from a node that died to this one (compare-and-set: one claimer wins)."""
    return bool(
        ModelAssignment.objects.filter(model=model, node=previous_node).update(
            node=node, devices=devices, updated_at=timezone.now()
        )
    )


# ---------------------------------------------------------------- integrations (OpenAI)

OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini")


def _fernet():
    import base64
    import hashlib

    from cryptography.fernet import Fernet

    # A key of its own, derived from the server secret: the database alone never reveals the API key.
    key = hashlib.sha256(b"refact-integrations:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def secret_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def integration_openai_save(
    *, actor: object | None, enabled: bool, api_key: str | None = None, models: list[str] | None = None
) -> IntegrationSettings:
    """Save the OpenAI switch, key (None keeps the saved one, "" removes it) and the GPT models offered."""
    row, _ = IntegrationSettings.objects.get_or_create(pk=1)
    diff: dict[str, object] = {}
    if api_key is not None:
        api_key = api_key.strip()
        if api_key and (len(api_key) < 20 or any(c.isspace() for c in api_key)):
            raise ApplicationError("that does not look like an OpenAI API key", field="api_key")
        row.openai_key_encrypted = secret_encrypt(api_key) if api_key else ""
        diff["api_key"] = "changed" if api_key else "removed"
    if models is not None:
        unknown = [m for m in models if m not in OPENAI_MODELS]
        if unknown:
            raise ApplicationError(f"unknown OpenAI model(s): {', '.join(unknown)}", field="models")
        row.openai_models = list(dict.fromkeys(models))
        diff["models"] = row.openai_models
    if enabled and not row.openai_key_encrypted:
        raise ApplicationError("save an API key before enabling OpenAI", field="api_key")
    row.openai_enabled = enabled
    diff["enabled"] = enabled
    row.save()
    _audit(actor=actor, action="hosting.openai_integration", target=row, diff=diff)
    return row
