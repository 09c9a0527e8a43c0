from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerNode(models.Model):
    """A gpu_worker process (or the server's in-process worker), alive while its heartbeat is fresh."""

    name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    embedded = models.BooleanField(default=False, help_text="Runs inside the web server process.")
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModel(models.Model):
    """A model added to the catalogue locally (e.g. by `create_tiny_model`), weights in the data directory."""

    name = models.CharField(max_length=100, unique=True)
    family = models.CharField(max_length=50)
    weights = models.CharField(max_length=500, help_text="Path of the weights, relative to the data directory.")
    n_ctx = models.PositiveIntegerField()
    required_memory_mb = models.PositiveIntegerField(default=0)
    capabilities = models.JSONField(default=list)
    backends = models.JSONField(default=list)
    fim = models.JSONField(null=True, blank=True, help_text="template, prefix/suffix/middle/eot tokens")
    lora_target_modules = models.JSONField(default=list)
    cpu_capable = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
