"""The devices of this machine, as a worker registers them: every GPU with its memory, and the CPU."""

from __future__ import annotations

import importlib.util
import logging
import os
import platform

logger = logging.getLogger(__name__)


def _cpu() -> dict[str, object]:
    try:
        import psutil

        memory = psutil.virtual_memory()
        total, free = memory.total, memory.available
    except ImportError:  # the web image may lack psutil: sysconf knows the total
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    name = platform.processor() or platform.machine()
    return {
        "id": "cpu",
        "kind": "cpu",
        "name": f"{name} ({os.cpu_count()} cores)",
        "memory_total_mb": total // 2**20,
        "memory_free_mb": free // 2**20,
    }


def _gpus_nvml() -> list[dict[str, object]] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: no GPUs
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "id": f"cuda:{index}",
                    "kind": "gpu",
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total_mb": int(memory.total) // 2**20,
                    "memory_free_mb": int(memory.free) // 2**20,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _gpus_torch() -> list[dict[str, object]]:
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        gpus.append(
            {
                "id": f"cuda:{index}",
                "kind": "gpu",
                "name": torch.cuda.get_device_name(index),
                "memory_total_mb": total // 2**20,
                "memory_free_mb": free // 2**20,
            }
        )
    return gpus


def detect_devices(*, allow_torch: bool = True) -> list[dict[str, object]]:
    """GPUs through NVML (cheap, no CUDA context), else torch.cuda; the CPU always, last."""
    gpus = _gpus_nvml()
    if gpus is None:
        try:
            gpus = _gpus_torch() if allow_torch else []
        except Exception:
            logger.warning("GPU detection through torch failed", exc_info=True)
            gpus = []
    return [*gpus, _cpu()]


def detect_backends(devices: list[dict[str, object]]) -> list[str]:
    """transformers runs anywhere; vLLM only where there is a GPU and vllm is installed."""
    backends = ["transformers"]
    if any(device["kind"] == "gpu" for device in devices) and importlib.util.find_spec("vllm") is not None:
        backends.append("vllm")
    return backends
