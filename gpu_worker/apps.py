from __future__ import annotations

from django.apps import AppConfig


class GpuWorkerConfig(AppConfig):
    """The worker side: Dramatiq actors' heavy code, training and inference. Imports torch lazily."""

    name = "gpu_worker"
    verbose_name = "GPU worker"
