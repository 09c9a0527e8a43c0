from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

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
from hosting.models import RegisteredModel, WorkerNode
from refact_site.exceptions import ApplicationError

if TYPE_CHECKING:
    from gpu_worker.tiny_model import TinyModelConfig

MODEL_NAME = re.compile(r"[0-9A-Za-z_.\-/]{1,100}")


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
