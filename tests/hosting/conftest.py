from __future__ import annotations

import pytest

from hosting.models import WorkerNode


def gpu(index: int, memory_mb: int) -> dict[str, object]:
    return {
        "id": f"cuda:{index}",
        "kind": "gpu",
        "name": "NVIDIA Test",
        "memory_total_mb": memory_mb,
        "memory_free_mb": memory_mb,
    }


CPU = {"id": "cpu", "kind": "cpu", "name": "x86_64 (2 cores)", "memory_total_mb": 16000, "memory_free_mb": 8000}


@pytest.fixture
def make_node(db):
    def make(name: str = "node-a", gpus: list[int] | None = None, vllm: bool = True) -> WorkerNode:
        devices = [gpu(i, memory) for i, memory in enumerate(gpus or [])] + [CPU]
        backends = ["transformers", "vllm"] if gpus and vllm else ["transformers"]
        return WorkerNode.objects.create(name=name, hostname=name, pid=1, devices=devices, backends=backends)

    return make
