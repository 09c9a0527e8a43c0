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
