"""Where an assignment runs: a node and devices that can hold it, or a refusal saying why not.

Pure reads over the live nodes' registered devices and the other assignments; nothing starts here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from hosting.catalogue import TRANSFORMERS, VLLM, ModelSpec
from hosting.models import ModelAssignment, WorkerNode
from refact_site.exceptions import ApplicationError

SHARDS = (1, 2, 4)


@dataclass(frozen=True)
class Placement:
    node: str
    devices: list[str]


def alive_window() -> timedelta:
    return timedelta(seconds=settings.REFACT_WORKER_STALE_SECONDS)


def nodes_alive() -> list[WorkerNode]:
    from hosting.selectors import worker_node_list_alive

    return worker_node_list_alive(within=alive_window())


def memory_per_gpu_mb(spec: ModelSpec, gpus: int) -> int:
    return math.ceil(spec.required_memory_mb / max(gpus, 1))


def check_request(*, spec: ModelSpec, backend: str, gpus: int, n_ctx: int, concurrency: int) -> None:
    """Refusals that depend on the model alone, not on the machines."""
    if spec.third_party:
        raise ApplicationError(f"{spec.name} is served by its provider, not hosted here", field="model")
    if backend not in (VLLM, TRANSFORMERS):
        raise ApplicationError(f"unknown back end {backend!r}: use transformers or vllm", field="backend")
    if backend not in spec.backends:
        raise ApplicationError(
            f"{spec.name} cannot run on {backend}; it supports {', '.join(spec.backends)}", field="backend"
        )
    if gpus not in (0, *SHARDS):
        raise ApplicationError("gpus must be 0 (CPU), 1, 2 or 4", field="gpus")
    if gpus > spec.max_shards:
        raise ApplicationError(
            f"{spec.name} can be sharded over at most {spec.max_shards} GPU(s), not {gpus}", field="gpus"
        )
    if gpus == 0 and backend == VLLM:
        raise ApplicationError("the vLLM back end needs at least one GPU; use transformers for the CPU", field="gpus")
    if gpus == 0 and not spec.cpu_capable:
        raise ApplicationError(
            f"{spec.name} is too large for a CPU ({spec.required_memory_mb} MB); give it a GPU", field="gpus"
        )
    if not 1 <= n_ctx <= spec.n_ctx:
        raise ApplicationError(f"n_ctx must be between 1 and {spec.n_ctx} for {spec.name}", field="n_ctx")
    if not 1 <= concurrency <= 256:
        raise ApplicationError("concurrency must be between 1 and 256", field="concurrency")


def _gpu_usage(node: WorkerNode, others: list[ModelAssignment]) -> dict[str, list[tuple[str, bool, int]]]:
    """device id → [(model, shares, MB)] of the other assignments placed on this node."""
    from hosting.selectors import model_get

    usage: dict[str, list[tuple[str, bool, int]]] = {}
    for assignment in others:
        if assignment.node != node.name or assignment.gpus == 0:
            continue
        spec = model_get(assignment.model)
        need = memory_per_gpu_mb(spec, assignment.gpus) if spec else 0
        for device in assignment.devices:
            usage.setdefault(device, []).append((assignment.model, assignment.share_gpu, need))
    return usage


def placement_find(
    *,
    spec: ModelSpec,
    backend: str,
    gpus: int,
    share_gpu: bool,
    exclude: str | None = None,
    nodes: list[WorkerNode] | None = None,
) -> Placement:
    """The first live node with room for this model, or ApplicationError naming what is missing."""
    nodes = nodes_alive() if nodes is None else nodes
    if not nodes:
        raise ApplicationError(
            "no worker node is online: start the server (embedded worker) or `manage.py run_worker` first",
            field="model",
            status=409,
        )
    others = list(ModelAssignment.objects.exclude(model=exclude or "").exclude(node=""))
    if gpus == 0:
        for node in nodes:
            cpu = next((d for d in node.devices if d.get("kind") == "cpu"), None)
            if cpu is None or int(cpu.get("memory_total_mb", 0)) >= spec.required_memory_mb:
                return Placement(node=node.name, devices=["cpu"])
        raise ApplicationError(
            f"not enough memory: {spec.name} needs {spec.required_memory_mb} MB and no node's CPU memory holds it",
            field="model",
            status=409,
        )

    need = memory_per_gpu_mb(spec, gpus)
    if backend == VLLM and not any(VLLM in (node.backends or []) for node in nodes):
        raise ApplicationError(
            "no online node can run vLLM (it needs a GPU and vllm installed); use the transformers back end",
            field="backend",
            status=409,
        )
    most_gpus = max(sum(1 for d in node.devices if d.get("kind") == "gpu") for node in nodes)
    if most_gpus < gpus:
        raise ApplicationError(
            f"{spec.name} asks for {gpus} GPU(s) but the largest online node has {most_gpus}",
            field="gpus",
            status=409,
        )
    problems = []
    for node in nodes:
        if backend == VLLM and VLLM not in (node.backends or []):
            continue
        usage = _gpu_usage(node, others)
        fitting = []
        for device in node.devices:
            if device.get("kind") != "gpu":
                continue
            users = usage.get(device["id"], [])
            total = int(device.get("memory_total_mb", 0))
            used = sum(mb for _, _, mb in users)
            if users and not (share_gpu and all(shares for _, shares, _ in users)):
                problems.append(f"{node.name} {device['id']} is taken by {', '.join(m for m, _, _ in users)}")
            elif total - used < need:
                problems.append(f"{node.name} {device['id']} has {total - used} MB free")
            else:
                fitting.append((used, device["id"]))
        if len(fitting) >= gpus:
            fitting.sort()
            return Placement(node=node.name, devices=sorted(d for _, d in fitting[:gpus]))
    raise ApplicationError(
        f"cannot place {spec.name}: it needs {need} MB on each of {gpus} GPU(s)"
        + (" (shared)" if share_gpu else "")
        + "; "
        + "; ".join(problems[:6]),
        field="gpus",
        status=409,
    )
